#!/usr/bin/env bash
# kingdom_facing.sh - the herald against the real test Kingdom: three duchies' heralds
# (and participants) follow one StreamActiveComputations stream each; an MC creates an HMSS
# measurement (every herald creates it at INITIALIZED; the non-aggregators seal a secrets
# blob), then cancels it (every herald ends it CANCELLED and persists its token).
# usage: tests/e2e/kingdom_facing.sh BUILD_DIR    (exit 0 pass, 1 fail, 77 skip)
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
command -v sqlite3 >/dev/null || { echo "skip: no sqlite3"; exit 77; }
T=$(mktemp -d /tmp/kf-e2e.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$T"/*.log; do echo "== $f"; tail -n 20 "$f"; done; exit 1; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$SRC/deploy/mkpki" --dir "$T/pki" --duchies worker1,worker2,aggregator --edps edp1 --mcs mc1 >/dev/null
KP=$(port)
sed -e "s#/tmp/fed#$T#g" -e "s#127.0.0.1:0#127.0.0.1:$KP#" -e "s#poll: 1s#poll: 200ms#" \
    "$SRC/deploy/kingdom.example.yaml" > "$T/kingdom.yaml"
# start ACTOR CONFIG LOG: waits for the READY line (10 s), no sleeps
start() {
    local fifo="$T/ready.$RANDOM"; mkfifo "$fifo"
    "$1" --config "$2" --ready-fd 3 3>"$fifo" 2>"$3" & PIDS+=($!)
    local line; read -r -t 10 line <"$fifo" || fail "$1 not ready"; rm -f "$fifo"
    [[ $line == READY* ]] || fail "$1: $line"
}
start "$BUILD/actors/kingdom/duchy-kingdom" "$T/kingdom.yaml" "$T/kingdom.log"
for d in worker1 worker2 aggregator; do
    mkdir -p "$T/$d/data" "$T/$d/run"; chmod 700 "$T/$d/run" "$T/$d/data"
    head -c 32 /dev/urandom > "$T/$d/master.key"; chmod 600 "$T/$d/master.key"
    others=$(printf '%s\n' worker1 worker2 aggregator | grep -v "^$d\$")
    {
        printf 'duchy:\n  id: %s\n  data_dir: %s\n  runtime_dir: %s\n  master_key_file: %s\n' \
            "$d" "$T/$d/data" "$T/$d/run" "$T/$d/master.key"
        printf 'tls:\n  cert: %s\n  key: %s\n  trusted_ca: %s\n  parties: %s\n' \
            "$T/pki/$d/tls.pem" "$T/pki/$d/tls.key" "$T/pki/trusted-ca.pem" "$T/pki/parties.txt"
        printf 'signing:\n  cert: %s\n  key: %s\n  certificate: duchies/%s/certificates/sign\n' \
            "$T/pki/$d/sign.pem" "$T/pki/$d/sign.key" "$d"
        printf 'kingdom:\n  endpoint: 127.0.0.1:%s\n  server_name: localhost\n' "$KP"
        printf 'gateway:\n  listen: 127.0.0.1:%s\n' "$(port)"
        printf 'peers:\n'
        for o in $others; do printf '  - id: %s\n    endpoint: 127.0.0.1:1\n    server_name: localhost\n' "$o"; done
        printf 'roles:\n  aggregator: aggregator\n  first_non_aggregator: worker1\n  second_non_aggregator: worker2\n'
    } > "$T/$d.yaml"
    start "$BUILD/actors/duchy-participant" "$T/$d.yaml" "$T/$d-participant.log"
    start "$BUILD/actors/duchy-herald" "$T/$d.yaml" "$T/$d-herald.log"
done
cat > "$T/federation.json" <<JSON
{"kingdom": {"endpoint": "127.0.0.1:$KP"},
 "duchies": [
  {"id": "worker1", "role": "non_aggregator", "endpoint": "127.0.0.1:1", "admin": "x", "cert": "pki/worker1/tls.pem", "key": "pki/worker1/tls.key"},
  {"id": "worker2", "role": "non_aggregator", "endpoint": "127.0.0.1:1", "admin": "x", "cert": "pki/worker2/tls.pem", "key": "pki/worker2/tls.key"},
  {"id": "aggregator", "role": "aggregator", "endpoint": "127.0.0.1:1", "admin": "x", "cert": "pki/aggregator/tls.pem", "key": "pki/aggregator/tls.key"}],
 "edps": [{"id": "edp1", "cert": "pki/edp1/tls.pem", "key": "pki/edp1/tls.key"}],
 "mc": {"id": "mc1", "cert": "pki/mc1/tls.pem", "key": "pki/mc1/tls.key"},
 "trusted_ca": "pki/trusted-ca.pem", "pki": "pki",
 "campaign": {"population": 1000, "reach": 100, "seed": 1, "max_events": 3}}
JSON
M=$("$BUILD/tools/duchy-mc" create --dir "$T" --protocol hmss --type reach-and-frequency \
      --noise none --max-frequency 3 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["measurement"])')
ID=${M##*/}
# wait (10 s) until every duchy holds the computation at INITIALIZED (stage 1)
q() { sqlite3 "$T/$1/data/duchy.db" "$2" 2>/dev/null || true; }
for i in $(seq 100); do
    n=0; for d in worker1 worker2 aggregator; do [[ $(q $d "SELECT stage FROM computations WHERE id='$ID'") == 1 ]] && n=$((n+1)); done
    [[ $n == 3 ]] && break; sleep 0.1
done
[[ $n == 3 ]] || fail "not created everywhere ($n/3)"
for d in worker1 worker2; do
    [[ $(q $d "SELECT count(*) FROM blobs WHERE computation='$ID' AND slot='secrets'") == 1 ]] || fail "$d: no secrets blob"
done
[[ $(q aggregator "SELECT count(*) FROM blobs WHERE computation='$ID' AND slot='secrets'") == 0 ]] || fail "aggregator has secrets"
[[ $(q worker1 "SELECT count(*) FROM continuation_token") == 1 ]] || fail "no token persisted"
# the participants set their requisition params (HMSS: INITIALIZED = stage 1); a replay is
# skipped (§6.3), a LOG entry is accepted, and a FAIL fails the computation everywhere
FX="$BUILD/tests/e2e/kf-effect"
"$FX" "ipc://$T/worker1/run/participant.sock" set_params "$ID" 3 3 1 || fail "worker1 set_params"
"$FX" "ipc://$T/worker2/run/participant.sock" set_params "$ID" 3 4 1 || fail "worker2 set_params"
"$FX" "ipc://$T/aggregator/run/participant.sock" set_params "$ID" 3 1 1 || fail "aggregator set_params"
"$FX" "ipc://$T/worker1/run/participant.sock" set_params "$ID" 3 3 1 | grep -q "already set" \
    || fail "replayed set_params not skipped"
"$FX" "ipc://$T/worker2/run/participant.sock" log "$ID" 3 4 1 "transient e2e" || fail "log"
"$FX" "ipc://$T/worker2/run/participant.sock" fail "$ID" 3 4 1 "e2e failure" || fail "fail"
for i in $(seq 100); do
    n=0; for d in worker1 worker2 aggregator; do [[ $(q $d "SELECT ending_reason FROM computations WHERE id='$ID'") == FAILED ]] && n=$((n+1)); done
    [[ $n == 3 ]] && break; sleep 0.1
done
[[ $n == 3 ]] || fail "not failed everywhere ($n/3)"
# a FAIL after the end is OK-as-ended
"$FX" "ipc://$T/worker1/run/participant.sock" fail "$ID" 3 3 1 "late" | grep -q computation_ended \
    || fail "late FAIL not read as ended"
# a second measurement, cancelled
M=$("$BUILD/tools/duchy-mc" create --dir "$T" --protocol llv2 --type reach-and-frequency \
      --noise none --max-frequency 3 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["measurement"])')
ID=${M##*/}
for i in $(seq 100); do
    n=0; for d in worker1 worker2 aggregator; do [[ $(q $d "SELECT stage FROM computations WHERE id='$ID'") == 1 ]] && n=$((n+1)); done
    [[ $n == 3 ]] && break; sleep 0.1
done
[[ $n == 3 ]] || fail "llv2 not created everywhere ($n/3)"
"$BUILD/tools/duchy-mc" cancel --dir "$T" "$ID" --json >/dev/null
for i in $(seq 100); do
    n=0; for d in worker1 worker2 aggregator; do [[ $(q $d "SELECT ending_reason FROM computations WHERE id='$ID'") == CANCELLED ]] && n=$((n+1)); done
    [[ $n == 3 ]] && break; sleep 0.1
done
[[ $n == 3 ]] || fail "not cancelled everywhere ($n/3)"
# SIGTERM: every actor exits 0
for p in "${PIDS[@]}"; do kill -TERM "$p"; done
for p in "${PIDS[@]}"; do wait "$p" || fail "an actor exited $?"; done
PIDS=()
echo "1 passed, 0 failed"
