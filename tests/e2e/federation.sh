#!/usr/bin/env bash
# federation.sh - one measurement end to end through the real binaries: tools/federation up
# (the test Kingdom, three duchies under deploy/duchy-supervise, EDP simulators) in a temp
# dir, duchy-mc create, duchy-mc wait (verifies the aggregator's signature, decrypts, and
# rebuilds the ground truth), checks the result, tools/federation down.  Small campaign
# (population 20000, reach 500 per EDP, 3 EDPs) so a case runs in seconds on 2 cores.
#
# usage: tests/e2e/federation.sh BUILD_DIR CASE       (exit 0 pass, 1 fail, 77 skip)
# CASE:
#   llv2        noise none: reach == the plaintext estimate exactly, and the frequency
#               distribution == the plaintext sketch's exactly
#   rollv2      llv2-reach-only, noise none: reach == the plaintext estimate, no frequency
#   hmss        noise none: reach and frequency == the ground truth exactly
#   hmss-reach  hmss-reach-only, noise none: reach == the true reach, no frequency
#   noise       llv2 and hmss with geometric noise (eps 1, delta 1e-5): SUCCEEDED, verified,
#               reach within 100 of the plaintext estimate / true reach, each frequency
#               within 0.05 of the exact one, frequencies sum to 1
# Every step has a time limit; the trap stops every process and removes the dir (kept, with
# its logs, in DY_E2E_KEEP/CASE if DY_E2E_KEEP is set).
set -uo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR CASE}" && pwd)
CASE=${2:?usage: $0 BUILD_DIR CASE}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
export DY_BUILD=$BUILD
for b in actors/kingdom/duchy-kingdom tools/duchy-mc tools/duchy-edp actors/duchy-claimer actors/duchy-mill; do
    [[ -x $BUILD/$b ]] || { echo "skip: $BUILD/$b not built"; exit 77; }
done
T=$(mktemp -d /tmp/fed-e2e.XXXXXX)
cleanup() {
    timeout 60 "$SRC/tools/federation" down --dir "$T" --grace 20 >/dev/null 2>&1 ||
        echo "warning: federation down failed" >&2
    if [[ -n ${DY_E2E_KEEP:-} ]]; then mkdir -p "$DY_E2E_KEEP/$CASE" && cp -r "$T/." "$DY_E2E_KEEP/$CASE/"; fi
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() {
    echo "FAIL ($CASE): $*"
    [[ -f $T/logs/mc.log ]] && { echo "== mc.log (last 5)"; tail -n 5 "$T/logs/mc.log"; }
    for f in "$T"/logs/*.log; do
        echo "== $f (warnings and errors, last 15)"
        grep -E '"level":"(warn|error|fatal)"' "$f" | tail -n 15
    done
    exit 1
}

timeout 120 "$SRC/tools/federation" up --dir "$T" --edps 3 --population 20000 --reach 500 \
    --seed 7 --lease 20s --json >"$T/up.json" 2>"$T/up.err" || { cat "$T/up.err"; fail "federation up"; }
[[ $(tail -n 1 "$T/up.json") == \{* ]] || fail "federation up printed no JSON"
timeout 20 "$SRC/tools/federation" status --dir "$T" --json >"$T/status.json" 2>/dev/null ||
    fail "federation status: not every process alive"
CTL=$BUILD/tools/duchyctl
# ctl DUCHY ARGS...: duchyctl against that duchy's admin endpoint (last stdout line)
ctl() { local d=$1; shift; timeout 10 "$CTL" --admin "ipc://$T/$d/run/admin.sock" "$@" --json 2>/dev/null | tail -n 1; }
if [[ -x $CTL ]]; then
    # every actor of every duchy answers and is ready (STYLE.md rule 40)
    for d in worker1 worker2 aggregator; do
        ctl "$d" status | python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
names = sorted(a["name"] for a in s["actors"])
bad = [a["name"] for a in s["actors"] if a.get("state") != "ready"]
want = ["duchy-claimer-1", "duchy-coordinator", "duchy-gateway", "duchy-herald",
        "duchy-participant", "duchy-submitter"]
sys.exit(f"actors {names}, not ready: {bad}" if bad or names != want else 0)' ||
            fail "duchyctl status at $d"
    done
fi

# measure PROTOCOL NOISE -> result JSON in $T/result-PROTOCOL.json
measure() {
    local p=$1 noise=$2 out m
    local kf=(--max-frequency 10)
    [[ $p == *-reach-only ]] && kf=()   # a reach measurement; duchy-mc refuses K > 1
    out=$(timeout 30 "$BUILD/tools/duchy-mc" create --dir "$T" --protocol "$p" --noise "$noise" \
        "${kf[@]}" --json 2>>"$T/logs/mc.log" | tail -n 1) || fail "mc create $p"
    m=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["measurement"])' "$out") ||
        fail "mc create $p: $out"
    timeout 200 "$BUILD/tools/duchy-mc" wait --dir "$T" "$m" --timeout 180 --json \
        2>>"$T/logs/mc.log" | tail -n 1 >"$T/result-$p.json"
    echo "$p: $(cat "$T/result-$p.json")"
    # every duchy ends the computation COMPLETE (SUCCEEDED) within 10 s
    python3 - "$T" "${m##*/}" <<'PY' || fail "$p: not COMPLETE at every duchy"
import sqlite3, sys, time
d, cid = sys.argv[1:]
complete = {1: 13, 2: 9, 3: 9}
left = ["worker1", "worker2", "aggregator"]
deadline = time.monotonic() + 10
while left and time.monotonic() < deadline:
    for du in list(left):
        try:
            con = sqlite3.connect(f"file:{d}/{du}/data/duchy.db?mode=ro", uri=True, timeout=2)
            row = con.execute("SELECT protocol, stage FROM computations WHERE id = ?", (cid,)).fetchone()
            con.close()
        except sqlite3.Error:
            row = None
        if row and row[1] == complete.get(row[0]):
            left.remove(du)
    time.sleep(0.2)
if left:
    sys.exit(f"not COMPLETE at {left}")
PY
}

# check PROTOCOL MODE: MODE exact | noisy
check() {
    python3 - "$T/result-$1.json" "$1" "$2" <<'PY'
import json, sys
path, proto, mode = sys.argv[1:]
try:
    r = json.loads(open(path).read())
except ValueError:
    sys.exit(f"no result object")
errs = []
if r.get("state") != "SUCCEEDED":
    errs.append(f"state {r.get('state')}")
if r.get("signature_verified") is not True:
    errs.append("signature not verified")
llv2 = proto.startswith("llv2")
reach_only = proto.endswith("reach-only")
want = r.get("plaintext_estimate") if llv2 else r.get("true_reach")
if not isinstance(r.get("reach"), int) or not isinstance(want, int):
    errs.append(f"reach {r.get('reach')} / expected {want}")
elif mode == "exact" and r["reach"] != want:
    errs.append(f"reach {r['reach']} != {'plaintext estimate' if llv2 else 'true reach'} {want}")
elif mode == "noisy" and abs(r["reach"] - want) > 100:
    errs.append(f"reach {r['reach']} not within 100 of {want}")
if llv2 and r.get("reach") is not None and r["true_reach"] and abs(r["plaintext_estimate"] - r["true_reach"]) > 0.2 * r["true_reach"]:
    errs.append(f"plaintext estimate {r['plaintext_estimate']} far from the true reach {r['true_reach']}")
f = r.get("frequency") or {}
if reach_only:
    if f:
        errs.append(f"a reach measurement carries a frequency {f}")
else:
    exact = r.get("plaintext_frequency") if llv2 else r.get("true_frequency")
    if not exact or sorted(f, key=int) != sorted(exact, key=int) or len(f) != 10:
        errs.append(f"frequency keys {sorted(f)} vs {sorted(exact or {})}")
    else:
        for k in f:
            if mode == "exact" and f[k] != exact[k]:
                errs.append(f"frequency[{k}] {f[k]} != {exact[k]}")
            if mode == "noisy" and abs(f[k] - exact[k]) > 0.05:
                errs.append(f"frequency[{k}] {f[k]} not within 0.05 of {exact[k]}")
        if abs(sum(f.values()) - 1) > 1e-9:
            errs.append(f"frequencies sum to {sum(f.values())}")
if errs:
    sys.exit("; ".join(errs))
PY
}

case $CASE in
    llv2) measure llv2 none; check llv2 exact || fail "llv2" ;;
    rollv2) measure llv2-reach-only none; check llv2-reach-only exact || fail "llv2-reach-only" ;;
    hmss) measure hmss none; check hmss exact || fail "hmss" ;;
    hmss-reach) measure hmss-reach-only none; check hmss-reach-only exact || fail "hmss-reach-only" ;;
    noise)
        measure llv2 geometric; check llv2 noisy || fail "llv2 with geometric noise"
        measure hmss geometric; check hmss noisy || fail "hmss with geometric noise" ;;
    *) echo "unknown case $CASE"; exit 1 ;;
esac

# Each duchy's audit chain verifies.
if [[ -x $CTL ]]; then
    for d in worker1 worker2 aggregator; do
        a=$(ctl "$d" audit verify)
        python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if r.get("ok") is True and r.get("rows", 0) > 0 else 1)' "$a" ||
            fail "duchyctl audit verify at $d: $a"
    done
fi

# down leaves nothing running.
timeout 60 "$SRC/tools/federation" down --dir "$T" --grace 20 >/dev/null 2>&1 || fail "federation down"
[[ ! -e $T/pids ]] || fail "federation down left $T/pids"
echo "pass ($CASE)"
