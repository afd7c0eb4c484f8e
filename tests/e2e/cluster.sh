#!/usr/bin/env bash
# cluster.sh - the duchy cluster under concurrency and faults, end to end through the real
# binaries (STYLE.md rule 40): tools/federation up (the test Kingdom, three duchies under
# deploy/duchy-supervise, EDP simulators) in a temp dir, duchy-mc create/wait/cancel, the
# duchies' state through duchyctl (and SQLite read-only where duchyctl has no view), faults
# injected with signals, tools/federation down.  Small campaign (population 20000, reach 500
# per EDP; cancel: 5000 so that a stage is still running when the cancellation lands), short
# lease (6 s) and backoff (--backoff-scale 0.02).
#
# usage: tests/e2e/cluster.sh BUILD_DIR CASE       (exit 0 pass, 1 fail, 77 skip)
# CASE:
#   concurrent  an LLv2 and an HMSS measurement created back to back, both in flight at once
#               (both listed unfinished at the aggregator at the same moment): both SUCCEEDED,
#               noise-free results exact (LLv2: the plaintext estimate and frequency; HMSS:
#               the ground truth), COMPLETE/SUCCEEDED at every duchy
#   cancel      an LLv2 measurement (reach 5000 per EDP) cancelled while a mill runs a crypto
#               stage (SETUP_PHASE or EXECUTION_PHASE_*): CANCELLED at the Kingdom,
#               COMPLETE/CANCELLED at every duchy, no open stage attempt, no running worker
#               (duchyctl workers), no duchy-mill process left (pgrep), all within 15 s; then
#               a new measurement (llv2-reach-only over one EDP) SUCCEEDS exactly
#   restart     a non-aggregator duchy (worker2) stopped with SIGTERM to its supervisor while
#               the measurement waits between stages there (a WAIT_EXECUTION_PHASE_* stage, no
#               worker) and a peer's call to it is in flight (its coordinator held with
#               SIGSTOP until the gateway counts a call, continued once the gateway exited):
#               every actor exits 0 (the gateway's exit with an open call once crashed);
#               `tools/federation restart --duchy worker2` (same config, ports, keys and
#               data); the LLv2 measurement SUCCEEDS exactly
#   herald      worker1's duchy-herald killed with SIGKILL while its computation waits for the
#               Kingdom (WAIT_REQUISITIONS_AND_KEY_SET); the supervisor restarts it; the
#               measurement SUCCEEDS exactly; the new herald logged that it resumed from its
#               persisted token; the computation was created once (one "created" line, listed
#               once by duchyctl); the Kingdom holds exactly the three participants, all READY
# Every case ends with tools/federation down and no process left in the sessions of the
# processes it started, nor any duchy- process naming its dir.  Every wait has a time limit
# (and the whole case CASE_LIMIT seconds); the trap stops every process and removes the dir
# (kept, with its logs, in DY_E2E_KEEP/CASE if DY_E2E_KEEP is set).
set -uo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR CASE}" && pwd)
CASE=${2:?usage: $0 BUILD_DIR CASE}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
export DY_BUILD=$BUILD
for b in actors/kingdom/duchy-kingdom tools/duchy-mc tools/duchy-edp tools/duchyctl \
    actors/duchy-claimer actors/duchy-mill actors/duchy-herald; do
    [[ -x $BUILD/$b ]] || { echo "skip: $BUILD/$b not built"; exit 77; }
done
readonly CASE_LIMIT=150
readonly DUCHIES=(worker1 worker2 aggregator)
T=$(mktemp -d /tmp/cl-e2e.XXXXXX)
MC=$BUILD/tools/duchy-mc
CTL=$BUILD/tools/duchyctl
SIDS=""   # session ids of every process tools/federation started (each leads its session)
HELD=""   # a pid this script stopped with SIGSTOP (continued by the trap)

# note_sids: adds the recorded processes of DIR/pids (each the leader of its session, so
# its actors and their mills are in it) to SIDS.
note_sids() {
    local n p
    [[ -f $T/pids ]] || return 0
    while read -r n p; do
        [[ $p =~ ^[0-9]+$ && ,$SIDS, != *,$p,* ]] && SIDS=${SIDS:+$SIDS,}$p
    done <"$T/pids"
}

# leftovers: "pid command" of every process still in those sessions, or a duchy- process
# whose command line names the dir.
leftovers() {
    { [[ -n $SIDS ]] && pgrep -a -s "$SIDS"; pgrep -a -f -- "duchy-.*$T"; } 2>/dev/null | sort -u
}

cleanup() {
    [[ -n $HELD ]] && kill -CONT "$HELD" 2>/dev/null
    timeout 60 "$SRC/tools/federation" down --dir "$T" --grace 20 >/dev/null 2>&1 ||
        echo "warning: federation down failed" >&2
    local left p
    left=$(leftovers)
    if [[ -n $left ]]; then
        echo "warning: still running after down, SIGKILL:" >&2
        echo "$left" >&2
        while read -r p _; do kill -KILL "$p" 2>/dev/null; done <<<"$left"
    fi
    if [[ -n ${DY_E2E_KEEP:-} ]]; then mkdir -p "$DY_E2E_KEEP/$CASE" && cp -r "$T/." "$DY_E2E_KEEP/$CASE/"; fi
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# fail MSG: the reason and the logs' warnings on stderr (seen even from a $(...) subshell,
# whose caller then exits too), exit 1
fail() {
    {
        echo "FAIL ($CASE): $*"
        [[ -f $T/logs/mc.log ]] && { echo "== mc.log (last 5)"; tail -n 5 "$T/logs/mc.log"; }
        for f in "$T"/logs/*.log; do
            echo "== $f (warnings and errors, last 15)"
            grep -E '"level":"(warn|error|fatal)"' "$f" | tail -n 15
        done
    } >&2
    exit 1
}
t0=$SECONDS
# limit S: S seconds, or what is left of the case's CASE_LIMIT if less (at least 1, so that a
# late step fails on its own time limit)
limit() {
    local l=$((CASE_LIMIT - (SECONDS - t0)))
    ((l < 1)) && l=1
    if ((l < $1)); then echo "$l"; else echo "$1"; fi
}

# up REACH: the federation, every actor of every duchy ready.  The Kingdom ends every
# stream after 2 s, so each herald reopens from its token several times per case (under
# ASan+UBSan in CI: the reader thread's hand-over is where a use-after-free once hid).
up() {
    timeout "$(limit 120)" "$SRC/tools/federation" up --dir "$T" --edps 3 --population 20000 \
        --reach "$1" --seed 7 --lease 6s --backoff-scale 0.02 --kingdom-stream-max 2s \
        --json >"$T/up.json" 2>"$T/up.err" ||
        { cat "$T/up.err"; note_sids; fail "federation up"; }
    note_sids
    [[ $(tail -n 1 "$T/up.json") == \{* ]] || fail "federation up printed no JSON"
    local d
    for d in "${DUCHIES[@]}"; do
        ctl "$d" status | python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
bad = [a["name"] for a in s["actors"] if a.get("state") != "ready"]
sys.exit(f"not ready: {bad}" if bad or len(s["actors"]) != 6 else 0)' || fail "duchyctl status at $d"
    done
}

# ctl DUCHY ARGS...: duchyctl against that duchy's admin endpoint (its last stdout line)
ctl() { local d=$1; shift; timeout 10 "$CTL" --admin "ipc://$T/$d/run/admin.sock" "$@" --json 2>/dev/null | tail -n 1; }

# create PROTOCOL [duchy-mc options]: prints the measurement's id (the last name segment)
create() {
    local p=$1 out
    shift
    out=$(timeout "$(limit 30)" "$MC" create --dir "$T" --protocol "$p" --noise none "$@" --json \
        2>>"$T/logs/mc.log" | tail -n 1) || fail "mc create $p"
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])["measurement"].rsplit("/", 1)[1])' "$out" ||
        fail "mc create $p: $out"
}

# wait_result ID: duchy-mc wait's JSON in $T/result-ID.json (whatever the outcome)
wait_result() {
    local l
    l=$(limit 120)
    timeout $((l + 10)) "$MC" wait --dir "$T" "$1" --timeout "$l" --json 2>>"$T/logs/mc.log" |
        tail -n 1 >"$T/result-$1.json"
    echo "$1: $(cat "$T/result-$1.json")"
}

# kingdom_state ID: the measurement's state per duchy-mc show
kingdom_state() {
    timeout 20 "$MC" show --dir "$T" "$1" --json 2>>"$T/logs/mc.log" | tail -n 1 |
        python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["state"])' 2>/dev/null
}

# check_exact ID: SUCCEEDED, verified, and the noise-free result exact: LLv2 reach ==
# plaintext_estimate and frequency == plaintext_frequency; HMSS reach == true_reach and
# frequency == true_frequency; a reach-only result carries no frequency
check_exact() {
    python3 - "$T/result-$1.json" <<'PY' || fail "result of $1"
import json, sys
try:
    r = json.loads(open(sys.argv[1]).read())
except ValueError:
    sys.exit("no result object")
errs = []
if r.get("state") != "SUCCEEDED":
    errs.append(f"state {r.get('state')}")
if r.get("signature_verified") is not True:
    errs.append("signature not verified")
proto = r.get("protocol", "")
llv2 = proto.startswith("llv2")
want = r.get("plaintext_estimate") if llv2 else r.get("true_reach")
if not isinstance(r.get("reach"), int) or not isinstance(want, int) or r["reach"] != want:
    errs.append(f"reach {r.get('reach')} != {'plaintext estimate' if llv2 else 'true reach'} {want}")
f = r.get("frequency") or {}
if proto.endswith("reach-only"):
    if f:
        errs.append(f"a reach measurement carries a frequency {f}")
else:
    exact = r.get("plaintext_frequency") if llv2 else r.get("true_frequency")
    if not exact or f != exact:
        errs.append(f"frequency {f} != {exact}")
if errs:
    sys.exit(f"{proto}: " + "; ".join(errs))
PY
}

# computations_at DUCHY: duchyctl computations (a JSON list; [] if no answer)
computations_at() {
    local c
    c=$(ctl "$1" computations)
    if [[ $c == \[* ]]; then echo "$c"; else echo "[]"; fi
}

# stage_at DUCHY ID: the computation's stage there ("-" if absent)
stage_at() {
    computations_at "$1" | python3 -c '
import json, sys
c = [x for x in json.loads(sys.stdin.read()) if x["id"] == sys.argv[1]]
print(c[0]["stage"] if c else "-")' "$2"
}

# all_ended ID REASON SECONDS: every duchy lists the computation exactly once, COMPLETE with
# that ending reason, within SECONDS
all_ended() {
    local id=$1 reason=$2 deadline=$((SECONDS + $(limit "$3"))) d ok why
    while :; do
        ok=1 why=""
        for d in "${DUCHIES[@]}"; do
            why=$(computations_at "$d" | python3 -c '
import json, sys
c = [x for x in json.loads(sys.stdin.read()) if x["id"] == sys.argv[1]]
if len(c) != 1:
    sys.exit(f"listed {len(c)} times")
if c[0]["stage"] != "COMPLETE" or c[0].get("ending_reason") != sys.argv[2]:
    sys.exit("%s %s" % (c[0]["stage"], c[0].get("ending_reason")))' "$id" "$reason" 2>&1) ||
                { ok=0; why="$d: $why"; break; }
        done
        ((ok)) && return 0
        ((SECONDS < deadline)) || fail "$id not COMPLETE/$reason at every duchy in $3 s ($why)"
        sleep 0.2
    done
}

# audit_ok: each duchy's audit chain verifies
audit_ok() {
    local d a
    for d in "${DUCHIES[@]}"; do
        a=$(ctl "$d" audit verify)
        python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if r.get("ok") is True and r.get("rows", 0) > 0 else 1)' "$a" ||
            fail "duchyctl audit verify at $d: $a"
    done
}

# finish: down, nothing left running
finish() {
    timeout 60 "$SRC/tools/federation" down --dir "$T" --grace 20 >/dev/null 2>&1 || fail "federation down"
    [[ ! -e $T/pids ]] || fail "federation down left $T/pids"
    local left
    left=$(leftovers)
    [[ -z $left ]] || fail "still running after down: $left"
}

# supervisor_pid DUCHY: its supervisor's pid per DIR/pids
supervisor_pid() { awk -v n="$1" '$1 == n {p = $2} END {print p}' "$T/pids"; }

# actor_pid DUCHY NAME: the pid of that actor (ready) per duchyctl status
actor_pid() {
    ctl "$1" status | python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
h = [a for a in s["actors"] if a["name"] == sys.argv[1] and a.get("state") == "ready"]
print(h[0]["pid"] if h else "")' "$2" 2>/dev/null
}

case $CASE in
concurrent)
    up 500
    a=$(create llv2 --max-frequency 10) || exit 1
    b=$(create hmss --max-frequency 10) || exit 1
    # both in flight at once: the aggregator lists both, neither COMPLETE, at one moment
    deadline=$((SECONDS + $(limit 30)))
    while :; do
        r=$(computations_at aggregator | python3 -c '
import json, sys
c = {x["id"]: x["stage"] for x in json.loads(sys.stdin.read())}
a, b = sys.argv[1:]
if a in c and b in c:
    print("both" if c[a] != "COMPLETE" and c[b] != "COMPLETE" else "sequential")
else:
    print("wait")' "$a" "$b")
        [[ $r == both ]] && break
        [[ $r == sequential ]] && fail "one measurement ended before the other reached the aggregator"
        ((SECONDS < deadline)) || fail "the aggregator never listed both $a and $b"
        sleep 0.1
    done
    wait_result "$a"
    wait_result "$b"
    check_exact "$a"
    check_exact "$b"
    all_ended "$a" SUCCEEDED 10
    all_ended "$b" SUCCEEDED 10
    audit_ok
    finish ;;
cancel)
    up 5000
    m=$(create llv2 --max-frequency 10) || exit 1
    # until some duchy runs a mill for a crypto stage of it
    deadline=$((SECONDS + $(limit 60)))
    mills=""
    while [[ -z $mills ]]; do
        for d in "${DUCHIES[@]}"; do
            w=$(ctl "$d" workers)
            mills=$(python3 -c '
import json, sys
try:
    w = json.loads(sys.argv[1])
except ValueError:
    w = []
print(" ".join("%s:%s" % (x["pid"], x["stage"]) for x in w
               if x["computation"] == sys.argv[2]
               and (x["stage"] == "SETUP_PHASE" or x["stage"].startswith("EXECUTION_PHASE"))))' "$w" "$m")
            [[ -n $mills ]] && { at=$d; break; }
        done
        [[ -n $mills ]] && break
        s=$(kingdom_state "$m")
        [[ $s == SUCCEEDED || $s == FAILED ]] && fail "$m ended ($s) before a crypto stage was seen running"
        ((SECONDS < deadline)) || fail "no mill for $m seen in time"
        sleep 0.1
    done
    echo "running at $at: $mills"
    tc=$SECONDS
    out=$(timeout 20 "$MC" cancel --dir "$T" "$m" --json 2>>"$T/logs/mc.log" | tail -n 1) ||
        fail "mc cancel: $out"
    [[ $out == *'"state": "CANCELLED"'* ]] || fail "mc cancel answered $out"
    [[ $(kingdom_state "$m") == CANCELLED ]] || fail "the Kingdom does not show $m CANCELLED"
    all_ended "$m" CANCELLED 15
    # no worker, no open attempt, no mill process, within the same 15 s
    deadline=$((tc + 15))
    while :; do
        busy=""
        for d in "${DUCHIES[@]}"; do
            w=$(ctl "$d" workers)
            [[ $w == "[]" ]] || busy+="$d workers $w; "
            o=$(python3 -c '
import sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
print(con.execute("SELECT count(*) FROM stage_attempts WHERE computation = ? AND end_at IS NULL",
                  (sys.argv[2],)).fetchone()[0])' "$T/$d/data/duchy.db" "$m") || o="?"
            [[ $o == 0 ]] || busy+="$d open attempts $o; "
        done
        p=$(pgrep -a -s "$SIDS" -x duchy-mill)
        [[ -n $p ]] && busy+="mill processes: $p; "
        for x in $mills; do
            [[ -r /proc/${x%%:*}/cmdline ]] && [[ $(tr '\0' ' ' <"/proc/${x%%:*}/cmdline") == duchy-mill* ]] &&
                busy+="mill ${x%%:*} still running; "
        done
        [[ -z $busy ]] && break
        ((SECONDS < deadline)) || fail "15 s after the cancellation: $busy"
        sleep 0.2
    done
    echo "cancelled everywhere in $((SECONDS - tc)) s"
    # the federation still serves
    n=$(create llv2-reach-only --edps 1) || exit 1
    wait_result "$n"
    check_exact "$n"
    all_ended "$n" SUCCEEDED 10
    audit_ok
    finish ;;
restart)
    up 500
    m=$(create llv2 --max-frequency 10) || exit 1
    # Until worker2 waits between stages: a WAIT_EXECUTION_PHASE_* stage and no worker there.
    # Then a peer's call in flight at worker2's gateway when the stop comes (deterministically:
    # the coordinator held with SIGSTOP until the predecessor's call arrives), so the gateway
    # ends its drain with an open call (its exit once crashed on that).  The input may have
    # got through between the look and the SIGSTOP: then no call comes while the coordinator
    # is held, so the stage is read again (from the store: the admin endpoint is the held
    # coordinator) and the coordinator let go until the next wait stage if it moved.
    sp=$(supervisor_pid worker2)
    co=$(actor_pid worker2 duchy-coordinator)
    gw=$(actor_pid worker2 duchy-gateway)
    [[ $co =~ ^[0-9]+$ && $gw =~ ^[0-9]+$ ]] || fail "no coordinator/gateway pid at worker2"
    deadline=$((SECONDS + $(limit 60)))
    while :; do
        s=$(stage_at worker2 "$m")
        if [[ $s == WAIT_EXECUTION_PHASE_*_INPUTS && $(ctl worker2 workers) == "[]" ]]; then
            kill -STOP "$co" || fail "kill -STOP $co"
            HELD=$co
            # LLv2 WAIT_EXECUTION_PHASE_{ONE,TWO,THREE}_INPUTS = 7, 9, 11 (PROTOCOL.md §5.1)
            python3 -c '
import sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
r = con.execute("SELECT stage FROM computations WHERE id = ?", (sys.argv[2],)).fetchone()
sys.exit(0 if r and r[0] in (7, 9, 11) else 1)' "$T/worker2/data/duchy.db" "$m" && break
            kill -CONT "$co"
            HELD=""
        fi
        [[ $s == COMPLETE ]] && fail "worker2 finished $m before it was seen between stages"
        ((SECONDS < deadline)) || fail "worker2 never seen between stages of $m (last $s)"
        sleep 0.05
    done
    echo "worker2 at $s: its coordinator $co held (SIGSTOP) until a peer's call is in flight"
    deadline=$((SECONDS + $(limit 30)))
    until [[ $(ctl worker2 status --actor gateway) =~ \"calls_in_flight\":([1-9][0-9]*) ]]; do
        ((SECONDS < deadline)) || fail "no peer call reached worker2's gateway in 30 s"
        sleep 0.1
    done
    echo "worker2: ${BASH_REMATCH[1]} call(s) in flight; SIGTERM to its supervisor $sp"
    nlog=$(wc -l <"$T/logs/worker2.log")
    kill -TERM "$sp" || fail "kill -TERM $sp"
    # the gateway drains (at most 10 s: the held coordinator answers nothing) and exits; then
    # the coordinator may go on and stop too
    deadline=$((SECONDS + $(limit 30)))
    while kill -0 "$gw" 2>/dev/null; do
        ((SECONDS < deadline)) || fail "worker2's gateway still running 30 s after SIGTERM"
        sleep 0.1
    done
    kill -CONT "$co" && HELD=""
    deadline=$((SECONDS + $(limit 40)))
    while pgrep -s "$sp" >/dev/null; do
        ((SECONDS < deadline)) || fail "worker2 (session $sp) still running 40 s after SIGTERM"
        sleep 0.1
    done
    # every actor drained and exited 0 (the supervisor's exit events)
    tail -n +"$((nlog + 1))" "$T/logs/worker2.log" | python3 -c '
import json, sys
ex = {}
for line in sys.stdin:
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("proc") == "supervise" and e.get("event") == "exit":
        ex[e["actor"]] = e.get("exit")
bad = {a: c for a, c in ex.items() if c != 0}
if len(ex) != 6 or bad:
    sys.exit(f"actor exits after SIGTERM: {ex}")' || fail "worker2's actors did not all stop cleanly"
    s=$(kingdom_state "$m")
    [[ $s == SUCCEEDED || $s == FAILED || $s == CANCELLED ]] && fail "$m ended ($s) with worker2 down"
    timeout "$(limit 90)" "$SRC/tools/federation" restart --dir "$T" --duchy worker2 --grace 20 \
        2>>"$T/restart.err" || { cat "$T/restart.err"; fail "federation restart --duchy worker2"; }
    note_sids
    wait_result "$m"
    check_exact "$m"
    all_ended "$m" SUCCEEDED 10
    audit_ok
    finish ;;
herald)
    up 500
    m=$(create llv2 --max-frequency 10) || exit 1
    # until worker1 waits for the Kingdom (the herald has items of it still to come)
    deadline=$((SECONDS + $(limit 60)))
    while :; do
        s=$(stage_at worker1 "$m")
        [[ $s == WAIT_REQUISITIONS_AND_KEY_SET ]] && break
        [[ $s == - || $s == INITIALIZATION_PHASE ]] ||
            fail "worker1 went past WAIT_REQUISITIONS_AND_KEY_SET unseen (at $s)"
        ((SECONDS < deadline)) || fail "worker1 never reached WAIT_REQUISITIONS_AND_KEY_SET for $m"
        sleep 0.05
    done
    hp=$(actor_pid worker1 duchy-herald)
    [[ $hp =~ ^[0-9]+$ ]] || fail "no ready duchy-herald at worker1"
    [[ $(tr '\0' ' ' <"/proc/$hp/cmdline") == *duchy-herald*"$T/worker1/"* ]] || fail "pid $hp is not worker1's herald"
    echo "worker1 at $s: SIGKILL to duchy-herald $hp"
    kill -KILL "$hp" || fail "kill -KILL $hp"
    deadline=$((SECONDS + $(limit 20)))
    while :; do
        np=$(actor_pid worker1 duchy-herald)
        [[ $np =~ ^[0-9]+$ && $np != "$hp" ]] && break
        ((SECONDS < deadline)) || fail "the supervisor did not restart worker1's herald in 20 s"
        sleep 0.1
    done
    echo "duchy-herald restarted as $np"
    wait_result "$m"
    check_exact "$m"
    all_ended "$m" SUCCEEDED 10
    # the new herald resumed from its token; the computation was created once
    python3 - "$T/logs/worker1.log" "$hp" "$np" "$m" <<'PY' || fail "worker1's herald log"
import json, sys
path, old, new, cid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lines = []
for l in open(path):
    try:
        lines.append(json.loads(l))
    except ValueError:
        pass
herald = [e for e in lines if e.get("proc") == "herald"]
if not any(e.get("pid") == new and e.get("msg", "").startswith("resuming the stream from the persisted token")
           for e in herald):
    sys.exit(f"herald {new} did not log resuming from its persisted token")
created = [e for e in herald if e.get("computation") == cid and e.get("msg", "").startswith("created")]
if len(created) != 1 or created[0].get("pid") != old:
    sys.exit(f"{cid} created {len(created)} times: {created}")
PY
    # the Kingdom: the computation SUCCEEDED with exactly its three participants, all READY
    python3 - "$T/kingdom/kingdom.db" "$m" <<'PY' || fail "the Kingdom's participants of $m"
import base64, sqlite3, sys
path, ext = sys.argv[1:]
kid = int.from_bytes(base64.urlsafe_b64decode(ext + "="), "big")
con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
st = con.execute("SELECT state FROM computations WHERE id = ?", (kid,)).fetchone()
rows = sorted(con.execute("SELECT duchy, state, failure IS NOT NULL FROM participants WHERE computation = ?",
                          (kid,)).fetchall())
want = [("aggregator", 3, 0), ("worker1", 3, 0), ("worker2", 3, 0)]   # READY, no failure
if st != (5,) or rows != want:
    sys.exit(f"computation state {st} (want 5 SUCCEEDED), participants {rows} (want {want})")
PY
    audit_ok
    finish ;;
*) echo "unknown case $CASE"; exit 1 ;;
esac
echo "pass ($CASE) in $((SECONDS - t0)) s"
