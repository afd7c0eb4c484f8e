#!/usr/bin/env bash
# test_supervise.sh - deploy/duchy-supervise against fake actors (a small bash script
# behind duchy-<actor> symlinks): config check (exit 100), usage (64), start order with
# READY lines, supervisor.json, restart with backoff after a crash, no restart after exit
# 100 (exit 100 when nothing is left), --once, the readiness timeout, and SIGTERM forwarded
# to every actor with exit 0.  TAP output; every wait is bounded; cleanup by trap.
#
# usage: tests/unit/test_supervise.sh [SOURCE_ROOT]
# shellcheck disable=SC2317 # functions called indirectly (trap, eventually)
set -uo pipefail

ROOT=${1:-${DY_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}}
SUP=$ROOT/deploy/duchy-supervise
T=$(mktemp -d /tmp/test_supervise.XXXXXX)
SUPPID=0
cleanup() {
    if ((SUPPID > 0)); then kill -KILL "$SUPPID" 2>/dev/null; fi
    local p
    # Only the fakes this run started, by the pids they recorded.
    if [[ -f $T/pids ]]; then
        while read -r p; do kill -KILL "$p" 2>/dev/null; done <"$T/pids"
    fi
    rm -rf "$T"
}
trap cleanup EXIT

N=0 FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $1"; }
not_ok() {
    N=$((N + 1)) FAILED=$((FAILED + 1))
    echo "not ok $N - $1"
    local line
    while IFS= read -r line; do echo "# $line"; done <<<"${2:-}"
}
check() { # check DESC CMD...
    local d=$1
    shift
    if "$@"; then ok "$d"; else not_ok "$d" "$(tail -n 30 "$T/sup.log" 2>/dev/null)"; fi
}
# waits up to $1 seconds for the command to succeed (bounded polling in the harness)
eventually() {
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 20; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}

mkdir -p "$T/bin" "$T/ctl"
cat >"$T/bin/fake" <<'EOF'
#!/usr/bin/env bash
# A fake duchy actor: behaviour from $FAKE_DIR/ctl/<name>.
cfg= ready=-1 inst= check=0
while (($#)); do
    case $1 in
        --config) cfg=$2; shift 2 ;;
        --ready-fd) ready=$2; shift 2 ;;
        --instance) inst=$2; shift 2 ;;
        --check-config) check=1; shift ;;
        *) echo "fake: bad arg $1" >&2; exit 64 ;;
    esac
done
if ((check)); then
    if grep -q BROKEN "$cfg"; then echo "$cfg:1: duchy: BROKEN" >&2; exit 100; fi
    cat "$cfg"
    exit 0
fi
name=${0##*/duchy-}
[[ -n $inst ]] && name+=-$inst
mode=$(cat "$FAKE_DIR/ctl/$name" 2>/dev/null)
echo "start $name $$" >>"$FAKE_DIR/events"
echo "$$" >>"$FAKE_DIR/pids"
case $mode in
    perm) exit 100 ;;
    silent) exec sleep 1000 ;;
    crash-once)
        if [[ ! -e $FAKE_DIR/ctl/$name.crashed ]]; then
            touch "$FAKE_DIR/ctl/$name.crashed"
            echo "READY name=$name pid=$$ version=fake" >&"$ready"
            exit 111
        fi ;;
esac
echo "READY name=$name pid=$$ version=fake" >&"$ready"
exec {ready}>&-
[[ $mode == exit0 ]] && exit 0
child=0
trap 'echo "term $name" >>"$FAKE_DIR/events"; kill $child 2>/dev/null; exit 0' TERM
while :; do
    sleep 1000 </dev/null >/dev/null 2>&1 &
    child=$!
    echo "$child" >>"$FAKE_DIR/pids"
    wait $child
done
EOF
chmod +x "$T/bin/fake"
for a in coordinator participant submitter herald gateway claimer; do
    ln -s fake "$T/bin/duchy-$a"
done
export FAKE_DIR=$T

cat >"$T/duchy.yaml" <<EOF
duchy:
  id: "worker1"
  runtime_dir: "$T/run"
  claimers: 2
EOF

state_has() { grep -q "$1" "$T/run/supervisor.json" 2>/dev/null; }
events_count() { [[ $(grep -c "$1" "$T/events" 2>/dev/null) -ge $2 ]]; }
start_sup() { # args...
    : >"$T/sup.log"
    "$SUP" --config "$T/duchy.yaml" --bin "$T/bin" "$@" 2>"$T/sup.log" &
    SUPPID=$!
}
wait_sup() { # timeout_s -> sets RC
    local i
    RC=
    for ((i = 0; i < $1 * 20; i++)); do
        if ! kill -0 "$SUPPID" 2>/dev/null; then
            wait "$SUPPID"
            RC=$?
            SUPPID=0
            return 0
        fi
        sleep 0.05
    done
    return 1
}

echo "1..18"

# Usage and config.
"$SUP" --help >/dev/null 2>&1
check "--help exits 0" test $? -eq 0
"$SUP" --bogus >/dev/null 2>"$T/err"
rc=$?
check "unknown flag exits 64 with one line" test "$rc" -eq 64 -a "$(wc -l <"$T/err")" -eq 1
echo "# BROKEN" >>"$T/duchy.yaml"
"$SUP" --config "$T/duchy.yaml" --bin "$T/bin" 2>"$T/sup.log"
check "a bad config exits 100" test $? -eq 100
check "the config error is logged as JSON" grep -q '"event":"config".*BROKEN' "$T/sup.log"
sed -i '/BROKEN/d' "$T/duchy.yaml"

# Start-up in order, readiness, state file.
start_sup
all_running() { [[ $(grep -o '"state":"running"' "$T/run/supervisor.json" 2>/dev/null | wc -l) -eq 7 ]]; }
check "all seven actors reach running" eventually 20 all_running
order=$(awk '/^start/ {print $2}' "$T/events" | paste -sd,)
check "started in order" test "$order" = \
    "coordinator,participant,submitter,herald,gateway,claimer-1,claimer-2"
check "supervisor.json names the duchy and actors" \
    grep -q '^{"duchy":"worker1",.*"name":"duchy-claimer-2","pid":[1-9][0-9]*,"started":"' \
    "$T/run/supervisor.json"
check "each ready logged with its version" \
    test "$(grep -c '"event":"ready".*"version":"fake"' "$T/sup.log")" -eq 7

# A crash: restarted after the backoff, restarts counted.
coord=$(awk '$2 == "coordinator" {print $3}' "$T/events" | tail -n 1)
kill -KILL "$coord"
restarted() { state_has '"name":"duchy-coordinator","pid":[0-9]*,"started":"[^"]*","restarts":1,"state":"running"'; }
check "a killed actor is restarted" eventually 10 restarted
check "the crash is logged with its backoff" grep -q '"event":"exit","msg":"crashed: restart in 500ms"\|crashed: restart in 500ms' "$T/sup.log"

# SIGTERM: forwarded to every actor; exit 0.
kill -TERM "$SUPPID"
wait_sup 15
check "SIGTERM: the supervisor exits 0" test "${RC:-x}" = 0
check "SIGTERM reached all seven actors" events_count '^term ' 7
# The gateway stops first, while the coordinator that answers its calls runs.
first_term=$(awk '/^term/ {print $2; exit}' "$T/events")
check "the gateway is stopped before the other actors" test "$first_term" = gateway

# Exit 100 is never restarted; nothing left -> 100.
: >"$T/events"
echo perm >"$T/ctl/herald"
start_sup --actors herald
wait_sup 10
check "an actor exiting 100 is not restarted; supervisor exits 100" \
    test "${RC:-x}" = 100 -a "$(grep -c '^start herald' "$T/events")" -eq 1
check "its state is failed" state_has '"name":"duchy-herald",.*"state":"failed"'

# --once: an actor exiting 0 ends the run with 0; a crash is not restarted (111).
echo exit0 >"$T/ctl/gateway"
start_sup --once --actors gateway
wait_sup 10
check "--once: all exited 0 -> 0" test "${RC:-x}" = 0
echo silent >"$T/ctl/submitter"
start_sup --once --ready-timeout 1 --actors submitter
wait_sup 10
check "no READY within the timeout: killed, --once exits 111" test "${RC:-x}" = 111
check "the timeout is logged" grep -q 'no READY within 1s' "$T/sup.log"

if ((FAILED)); then exit 1; fi
exit 0
