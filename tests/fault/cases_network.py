"""cases_network.py - fault cases on the network between two duchies (issue 7): a connection
reset in the middle of an upload body chunk, a stalled peer (past the sender's send deadline
and the receiver's idle timeout), a peer that refuses connections for a while.

The fault sits in tests/fault/tcpproxy.py, between the non-aggregators and the aggregator:
both workers' `peers.aggregator.endpoint` point at the proxy's port (--set at up; the port is
reserved before up, from the ephemeral range, so that tools/federation cannot pick it for a
gateway), and the proxy forwards to the aggregator's gateway, whose port is known once the
federation is up.  The aggregator's every input from a peer duchy (the setup inputs of both
workers, the execution-phase inputs of its ring predecessor, whichever that is) goes through
it; the EDPs and the Kingdom talk to the aggregator directly.  Each case checks from the
proxy's counters that the fault really fired, then that the measurement SUCCEEDS with the
golden answer (faultlib's I1) and that the aggregator committed exactly one input per slot.
Each case is registered with faultlib.case and run by tools/fault-matrix."""

import datetime
import json
import os
import socket
import subprocess
import sys
import time

from faultlib import CaseFailed, DUCHIES, case, now, stage_number

PROXY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tcpproxy.py")
MIB = 1 << 20
NAS = ("worker1", "worker2")
RECEIVER = "aggregator"
# send outcomes that are not the fault's: success, or the peer not in the awaited stage yet
# (PROTOCOL.md 6.2 rule 2, an ordinary transient failure)
NOT_BROKEN = ("sent", "skipped", "peer_not_ready")


# ---- the proxy ----------------------------------------------------------------------------

class Proxy:
    """One tcpproxy.py process of case C, listening on PORT, forwarding to TARGET."""

    def __init__(self, c, port, target, name="proxy"):
        self.c = c
        self.port = port
        self.target = target
        self.control = os.path.join(c.dir, name + ".sock")
        self.ready = os.path.join(c.dir, name + ".json")
        self.logpath = os.path.join(c.dir, "logs", name + ".log")
        self.endpoint = f"127.0.0.1:{port}"
        self.p = None

    def start(self, timeout=15):
        logf = open(self.logpath, "ab")
        try:
            self.p = subprocess.Popen(
                [sys.executable, PROXY, "--listen", f"127.0.0.1:{self.port}", "--target",
                 self.target, "--control", self.control, "--ready-file", self.ready],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=logf)
        finally:
            logf.close()
        self.c.extra_procs.append(self.p)
        t = now() + timeout
        while now() < t:
            if os.path.exists(self.ready):
                got = json.load(open(self.ready))
                if got.get("port") != self.port:
                    raise CaseFailed(f"proxy listens on {got.get('port')}, not {self.port}")
                self.c.log(f"proxy 127.0.0.1:{self.port} -> {self.target} (pid {self.p.pid})")
                return self
            if self.p.poll() is not None:
                raise CaseFailed(f"tcpproxy.py exited {self.p.returncode} at start-up "
                                 f"(port {self.port}): {self.tail()}")
            time.sleep(0.05)
        raise CaseFailed(f"tcpproxy.py not ready within {timeout} s")

    def cmd(self, **kw):
        """Sends one control command, returns the reply (CaseFailed unless ok)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(self.control)
            s.sendall(json.dumps(kw).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                b = s.recv(4096)
                if not b:
                    break
                buf += b
        r = json.loads(buf or b"{}")
        if not r.get("ok"):
            raise CaseFailed(f"proxy command {kw}: {r}")
        if kw.get("cmd") != "stats":
            self.c.log(f"proxy: {kw}")
        return r

    def stats(self):
        return self.cmd(cmd="stats")

    def events(self, kind=None):
        """The proxy's JSON event lines (of KIND, if given)."""
        out = []
        try:
            with open(self.logpath, errors="replace") as f:
                for line in f:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue
                    if kind is None or e.get("event") == kind:
                        out.append(e)
        except OSError:
            pass
        return out

    def tail(self):
        try:
            return open(self.logpath, errors="replace").read()[-300:]
        except OSError:
            return "-"


def reserve_port():
    """A loopback port from the ephemeral range, held (bound, not listening) until the proxy
    takes it: tools/federation picks the gateways' ports below that range, and nothing else
    binds or connects from a bound port."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def up_with_proxy(c, senders=NAS, receiver=RECEIVER, sets=(), **kw):
    """c.up(...) with SENDERS' calls to RECEIVER routed through a fresh proxy (in pass
    mode); returns the Proxy."""
    held, port = reserve_port()
    sets = list(sets) + [f"{s}:peers.{receiver}.endpoint=127.0.0.1:{port}" for s in senders]
    try:
        c.up(sets=sets, **kw)
    finally:
        held.close()
    target = next(d["endpoint"] for d in c.fed["duchies"] if d["id"] == receiver)
    return Proxy(c, port, target).start()


# ---- the logs -----------------------------------------------------------------------------

def ts_of(line_ts):
    """A log line's ts ("2026-11-25T00:52:31.129Z") as unix seconds."""
    return datetime.datetime.strptime(line_ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def sends(c, cid, to=RECEIVER, aliases=()):
    """The sends of CID to TO, from every duchy's log, in time order:
    [{"t", "duchy", "stage", "attempt", "code", "msg", "size"}], one per (duchy, stage,
    attempt): the send worker's result line ("send to TO: CODE MSG", proc
    coordinator-send), or, for a failed send, the coordinator's "sends: CODE MSG" line (it is
    the only one when the coordinator killed the worker at its deadline; it names TO, or for
    a failed connect the endpoint, one of ALIASES).  size: the bytes sent, on success."""
    worker, effects = {}, {}
    prefix = f"send to {to}: "
    for d in DUCHIES:
        if d == to:
            continue
        try:
            f = open(c.logfile(d), errors="replace")
        except OSError:
            continue
        with f:
            for line in f:
                if cid not in line or ('"coordinator-send"' not in line and
                                       '"sends: ' not in line):
                    continue
                try:
                    j = json.loads(line)
                except ValueError:
                    continue
                msg = j.get("msg", "")
                if j.get("computation") != cid:
                    continue
                key = (d, j.get("stage"), j.get("attempt"))
                if j.get("proc") == "coordinator-send" and msg.startswith(prefix):
                    worker[key] = (j["ts"], msg[len(prefix):])
                elif j.get("proc") == "coordinator" and msg.startswith("sends: "):
                    rest = msg[len("sends: "):]
                    if f" {to}" in rest or any(a in rest for a in aliases):
                        effects[key] = (j["ts"], rest)
    out = []
    for key in set(worker) | set(effects):
        ts, rest = worker.get(key) or effects[key]
        code, _, msg = rest.partition(" ")
        if code in ("sent", "skipped") and key in effects:  # another peer's send failed
            ts, rest = effects[key]
            code, _, msg = rest.partition(" ")
        size = None
        if code == "sent":
            try:
                size = int(msg.split()[0])
            except (ValueError, IndexError):
                pass
        out.append({"t": ts_of(ts), "duchy": key[0], "stage": key[1], "attempt": key[2],
                    "code": code, "msg": msg, "size": size})
    out.sort(key=lambda x: x["t"])
    return out


def retry_delays(c, duchy, cid, stage):
    """[(attempt, seconds)] of the claimer's "transient failure ..., retry in X s" lines of
    CID at STAGE (the delay the claimer chose after each transiently failed attempt)."""
    out = []
    try:
        f = open(c.logfile(duchy), errors="replace")
    except OSError:
        return out
    with f:
        for line in f:
            if cid not in line or "retry in " not in line:
                continue
            try:
                j = json.loads(line)
            except ValueError:
                continue
            m = j.get("msg", "")
            if j.get("computation") != cid or j.get("stage") != stage or \
                    not m.startswith("transient failure") or not m.endswith(" s"):
                continue
            try:
                out.append((int(j.get("attempt")), float(m.rsplit("retry in ", 1)[1][:-2])))
            except (ValueError, TypeError, IndexError):
                pass
    return out


def gateway_counters(c, duchy=RECEIVER):
    st = c.ctl(duchy, "status", timeout=10, check=False) or {}
    return (st.get("counters") or {}).get("gateway") or {}


def check_one_input(c, cid, stage_name, sender, size=None, not_before=None):
    """The receiver holds exactly one committed input of SENDER's STAGE output (LLv2; at the
    receiver's WAIT_<STAGE>_INPUTS stage, in slot SENDER; the blob table's key is
    (computation, stage, slot), so this is: the row exists, with the size the sender sent;
    I2 compares it with the file) and its audit log one input_received for it.  NOT_BEFORE
    (unix s): the row was committed after that moment (by the retry, not the broken call)."""
    snum = stage_number(1, f"WAIT_{stage_name}_INPUTS")
    rows = c.dq(RECEIVER, "SELECT size, created_at FROM blobs WHERE computation = ? AND "
                "stage = ? AND slot = ?", (cid, snum, sender))
    if len(rows) != 1:
        c.violation(f"{RECEIVER}: {len(rows)} committed inputs of {sender} at {stage_name}")
    elif size is not None and rows[0][0] != size:
        c.violation(f"{RECEIVER}: the input of {sender} at {stage_name} has {rows[0][0]} "
                    f"bytes, the sender sent {size}")
    elif not_before is not None and rows[0][1] / 1e6 < not_before:
        c.violation(f"{RECEIVER}: the input of {sender} at {stage_name} was committed "
                    f"{not_before - rows[0][1] / 1e6:.2f} s before the broken call ended")
    aud = [d for (d,) in c.dq(RECEIVER, "SELECT detail FROM audit_log WHERE computation = ? "
                              "AND stage = ? AND event = 'input_received'", (cid, snum))
           if f"from={sender} " in d + " "]
    if len(aud) != 1:
        c.violation(f"{RECEIVER}: {len(aud)} input_received audit rows for {sender} at "
                    f"{stage_name}: {aud}")


def no_spool_left(c, duchy=RECEIVER):
    spool = os.path.join(c.ddir(duchy), "data", "spool")
    return not os.path.isdir(spool) or not os.listdir(spool)


# ---- the cases ----------------------------------------------------------------------------

@case("net-reset-mid-chunk", limit=200, budget=60,
      doc="TCP reset in the middle of a 1 MiB upload chunk to the aggregator: the send fails "
          "transiently, is retried; nothing partial is committed; SUCCEEDS")
def net_reset_mid_chunk(c):
    # reach 2000: the execution-phase inputs are 1.5-2 MiB, the setup inputs ~0.6 MiB.  The
    # reset is armed once the aggregator holds both setup inputs (WAIT_EXECUTION_PHASE_ONE_
    # INPUTS): the next upload to it is its ring predecessor's EXECUTION_PHASE_ONE output, and
    # the seed picks where in it the reset falls: in the middle of the first 1 MiB chunk or
    # of the second (the connection carries ~5 KB of handshake, GetComputationStage and
    # header before the body).
    p = up_with_proxy(c, reach=2000)
    base = p.stats()
    chunk = c.rng.choice((1, 2))
    # (the second chunk of a ~1.5-1.8 MiB body is 0.5-0.8 MiB long: 0.1-0.4 MiB into it)
    after = int(c.rng.uniform(0.25, 0.75) * MIB if chunk == 1 else
                MIB + c.rng.uniform(0.1, 0.4) * MIB)
    cid = c.create("llv2")
    c.wait_stage(RECEIVER, cid, lambda s: s is not None and
                 s >= stage_number(1, "WAIT_EXECUTION_PHASE_ONE_INPUTS"), timeout=90,
                 what="WAIT_EXECUTION_PHASE_ONE_INPUTS")
    p.cmd(cmd="reset", after_bytes=after, direction="c2s", count=1)
    c.fault_begin(f"proxy resets the next connection to {RECEIVER} that carries {after} "
                  f"bytes c2s (the middle of the body's 1 MiB chunk {chunk})")
    c.wait_until(lambda: p.stats()["resets"] >= 1, 90, "the proxy's reset")
    c.fault_end()
    r = c.wait_result(cid)
    st = p.stats()
    if st["resets"] != 1:
        c.violation(f"the proxy reset {st['resets']} connections, not 1: {st}")
    if st["connections"] - base["connections"] < 3:
        c.violation(f"only {st['connections']} connections went through the proxy")
    rst = p.events("reset")
    if not rst:
        c.violation("no reset event in the proxy's log")
        return
    t_rst = rst[0]["ts"]
    at = rst[0]["at"]
    ss = sends(c, cid, aliases=[p.endpoint])
    # the broken send: the first send result to the aggregator after the reset that is not
    # a success (nor "peer not ready yet"); then the next success of the same duchy and stage
    broken = next((s for s in ss if s["t"] >= t_rst - 0.01 and s["code"] not in NOT_BROKEN),
                  None)
    if broken is None:
        c.violation(f"no failed send to {RECEIVER} after the reset (sends: "
                    f"{[(s['duchy'], s['stage'], s['code']) for s in ss]})")
        return
    ok = next((s for s in ss if s["t"] > broken["t"] and s["duchy"] == broken["duchy"] and
               s["stage"] == broken["stage"] and s["code"] in ("sent", "skipped")), None)
    if ok is None:
        c.violation(f"{broken['duchy']}: the {broken['stage']} send was never retried to "
                    f"success after {broken['code']} {broken['msg']}")
        return
    transient = [x for x in c.attempts(broken["duchy"], cid)
                 if x[0] == stage_number(1, broken["stage"]) and x[1] == broken["attempt"]]
    if not transient or transient[0][3] != "FAILED":
        c.violation(f"{broken['duchy']}: the attempt of the reset send is not FAILED: "
                    f"{transient}")
    if ok["size"] is not None and not (MIB <= ok["size"] and at <= ok["size"]):
        c.violation(f"the reset at connection byte {at} is not inside a body of "
                    f"{ok['size']} bytes (at least 1 MiB)")
    if r.get("state") == "SUCCEEDED":
        check_one_input(c, cid, broken["stage"], broken["duchy"], ok["size"], not_before=t_rst)
    g = gateway_counters(c)
    if not g.get("uploads_aborted"):
        c.violation(f"{RECEIVER}'s gateway counted no aborted upload: {g}")
    if not no_spool_left(c):
        c.violation(f"{RECEIVER}: the spool still holds the broken upload")
    c.notes.append(f"reset {broken['duchy']} -> {RECEIVER} {broken['stage']} (attempt "
                   f"{broken['attempt']}) at connection byte {at} of a {ok['size']}-byte body "
                   f"(chunk {chunk}); sender: {broken['code']} {broken['msg'][:100]}; "
                   f"resent OK {ok['t'] - t_rst:.2f} s after the reset (attempt "
                   f"{ok['attempt']}); gateway uploads_aborted={g.get('uploads_aborted')}")


@case("net-stalled-peer", limit=200, budget=60,
      doc="the link to the aggregator stalls mid-upload past the send deadline and the "
          "gateway's idle timeout: deadline, retry, connection closed, SUCCEEDS")
def net_stalled_peer(c):
    deadline, idle, stall = 6, 3, 15
    p = up_with_proxy(c, reach=1000, sets=[f"worker1:duchy.send_deadline={deadline}s",
                                           f"worker2:duchy.send_deadline={deadline}s",
                                           f"{RECEIVER}:gateway.idle_timeout={idle}s"])
    base = p.stats()
    g0 = gateway_counters(c)
    after = 200 * 1024  # inside the first chunk of any upload (the setup inputs: ~0.3 MiB)
    p.cmd(cmd="stall", after_bytes=after, direction="c2s", seconds=stall, count=1)
    c.fault_begin(f"proxy stalls the first connection to {RECEIVER} that carries {after} "
                  f"bytes c2s, for {stall} s (send deadline {deadline} s, idle timeout {idle} s)")
    cid = c.create("llv2")
    c.wait_until(lambda: p.stats()["stalls"] >= 1, 120, "the proxy's stall")
    t_stall = p.events("stall")[0]["ts"] if p.events("stall") else time.time()
    # while the stall lasts: the gateway drops the silent connection after its idle timeout
    closed_at = None
    conns = []  # (seconds since the stall, the gateway's open connections) at each change
    while time.time() < t_stall + stall - 1:
        g = gateway_counters(c)
        if not conns or conns[-1][1] != g.get("connections"):
            conns.append((round(time.time() - t_stall, 1), g.get("connections")))
        if closed_at is None and g.get("uploads_aborted", 0) > g0.get("uploads_aborted", 0):
            closed_at = time.time() - t_stall
        time.sleep(0.25)
    stalled = p.stats()
    c.fault_end()
    r = c.wait_result(cid)
    st = p.stats()
    if st["stalls"] != 1:
        c.violation(f"the proxy stalled {st['stalls']} connections, not 1: {st}")
    if st["connections"] - base["connections"] < 3:
        c.violation(f"only {st['connections']} connections went through the proxy")
    if closed_at is None:
        c.violation(f"{RECEIVER}'s gateway did not abort the stalled upload within the "
                    f"{stall} s stall (idle timeout {idle} s)")
    elif closed_at > idle + 3:
        c.violation(f"{RECEIVER}'s gateway aborted the stalled upload only {closed_at:.1f} s "
                    f"after the stall (idle timeout {idle} s)")
    ss = sends(c, cid, aliases=[p.endpoint])
    broken = next((s for s in ss if s["t"] >= t_stall - 0.01 and s["code"] not in NOT_BROKEN),
                  None)
    if broken is None:
        c.violation(f"no failed send to {RECEIVER} after the stall (sends: "
                    f"{[(s['duchy'], s['stage'], s['code']) for s in ss]})")
        return
    gave_up = broken["t"] - t_stall
    if gave_up > deadline + 3:
        c.violation(f"{broken['duchy']} gave up on the stalled send {gave_up:.1f} s after the "
                    f"stall (send deadline {deadline} s)")
    ok = next((s for s in ss if s["t"] > broken["t"] and s["duchy"] == broken["duchy"] and
               s["stage"] == broken["stage"] and s["code"] in ("sent", "skipped")), None)
    if ok is None:
        c.violation(f"{broken['duchy']}: the {broken['stage']} send was never retried to "
                    f"success after {broken['code']} {broken['msg']}")
        return
    att = [x for x in c.attempts(broken["duchy"], cid)
           if x[0] == stage_number(1, broken["stage"]) and x[1] == broken["attempt"]]
    if not att or att[0][3] != "FAILED":
        c.violation(f"{broken['duchy']}: the attempt of the stalled send is not FAILED: {att}")
    if r.get("state") == "SUCCEEDED":
        check_one_input(c, cid, broken["stage"], broken["duchy"], ok["size"],
                        not_before=broken["t"] - 0.05)
    # no leaked connection: once everything ended, the gateway holds none open
    c.wait_until(lambda: gateway_counters(c).get("connections") == 0, 2 * idle + 5,
                 f"{RECEIVER}'s gateway to have no open connection")
    if not no_spool_left(c):
        c.violation(f"{RECEIVER}: the spool still holds the stalled upload")
    c.notes.append(f"stalled {broken['duchy']} -> {RECEIVER} {broken['stage']} (attempt "
                   f"{broken['attempt']}) at byte {after}; sender gave up {gave_up:.1f} s later: "
                   f"{broken['code']} {broken['msg'][:100]}; gateway aborted the upload "
                   f"{closed_at if closed_at is None else round(closed_at, 1)} s after the "
                   f"stall (its open connections, from the stall on: {conns}); "
                   f"resent OK {ok['t'] - t_stall:.1f} s after the stall began (attempt "
                   f"{ok['attempt']}); proxy open connections at the stall's end: "
                   f"{stalled['open']}")


@case("net-refused-peer", limit=200, budget=60,
      doc="the aggregator refuses connections for 10 s (peer unreachable): the senders back "
          "off and retry, SUCCEEDS")
def net_refused_peer(c):
    refuse, scale = 10, 0.05
    # backoff 0.05: at most 7 attempts fail in 10 s (0.1 + 0.2 + ... + 3.2 s of backoff
    # before the 7th), well under max_attempts (10)
    p = up_with_proxy(c, backoff=scale)
    p.cmd(cmd="refuse")
    c.fault_begin(f"proxy refuses every connection to {RECEIVER} for {refuse} s")
    cid = c.create("llv2")
    c.wait_until(lambda: p.stats()["refused"] >= 1, 60, "a refused connection")
    t_first = p.events("refuse")[0]["ts"] if p.events("refuse") else time.time()
    while time.time() < t_first + refuse:
        time.sleep(0.1)
    p.cmd(cmd="pass")
    t_pass = time.time()
    c.fault_end()
    refused = p.stats()["refused"]
    r = c.wait_result(cid)
    if refused < 2:
        c.violation(f"only {refused} connection(s) refused in {refuse} s: no retry")
    ss = sends(c, cid, aliases=[p.endpoint])
    failed = [s for s in ss if s["code"] not in ("sent", "skipped") and s["t"] <= t_pass + 0.5]
    if not failed:
        c.violation(f"no send to {RECEIVER} failed while it refused connections")
        return
    per = {}
    for s in failed:
        per.setdefault((s["duchy"], s["stage"]), []).append(s)
    notes = []
    for (d, stg), fs in sorted(per.items()):
        ok = next((s for s in ss if s["t"] > fs[-1]["t"] and s["duchy"] == d and
                   s["stage"] == stg and s["code"] in ("sent", "skipped")), None)
        if ok is None:
            c.violation(f"{d}: the {stg} send was never retried to success after "
                        f"{fs[-1]['code']} {fs[-1]['msg']}")
            continue
        if r.get("state") == "SUCCEEDED":
            check_one_input(c, cid, stg, d, ok["size"])
        # PROTOCOL.md 7.1: the n-th transient failure waits base + U[0, base] s, base =
        # min(600, 2^n) (times backoff_scale); the log prints it to 0.1 s
        delays = retry_delays(c, d, cid, stg)
        for n, x in delays:
            b = min(600, 2 ** n) * scale
            if not b - 0.06 <= x <= 2 * b + 0.06:
                c.violation(f"{d} {stg}: attempt {n} retried after {x} s, not in "
                            f"[{b:.2f}, {2 * b:.2f}] (backoff)")
        if len(delays) < len(fs):
            c.violation(f"{d} {stg}: {len(fs)} failed sends but {len(delays)} retry delays "
                        f"logged")
        notes.append(f"{d} {stg}: {len(fs)} refused sends ({fs[0]['code']}), backoffs "
                     f"{[x for _, x in delays]} s, sent {ok['t'] - t_pass:.1f} s after the "
                     f"pass (attempt {ok['attempt']})")
    c.notes.append(f"{refused} connections refused; " + "; ".join(notes))


@case("net-lost-response", limit=200, budget=60,
      doc="the aggregator commits an upload but its response never reaches the sender "
          "(stalled past the send deadline): the retry finds it delivered; one commit, "
          "SUCCEEDS")
def net_lost_response(c):
    deadline, idle = 6, 3
    p = up_with_proxy(c, reach=1000, sets=[f"worker1:duchy.send_deadline={deadline}s",
                                           f"worker2:duchy.send_deadline={deadline}s",
                                           f"{RECEIVER}:gateway.idle_timeout={idle}s"])
    cid = c.create("llv2")
    # calibration: the two setup uploads pass; their connections' s2c totals (handshake,
    # GetComputationStage, credit, then ~40 bytes of response and STATUS in the last TLS
    # records) say where the final answer of an upload starts
    c.wait_stage(RECEIVER, cid, lambda s: s is not None and
                 s >= stage_number(1, "WAIT_EXECUTION_PHASE_ONE_INPUTS"), timeout=90,
                 what="WAIT_EXECUTION_PHASE_ONE_INPUTS")
    c.wait_until(lambda: len([e for e in p.events("close") if e["bytes_c2s"] > 100000]) >= 2,
                 10, "the setup uploads' connections to close")
    totals = [e["bytes_s2c"] for e in p.events("close") if e["bytes_c2s"] > 100000]
    after = min(totals) - 20
    # the next upload (its ring predecessor's EXECUTION_PHASE_ONE output, one slot): every
    # byte to the aggregator passes, its answer stops in the middle of its last TLS records
    p.cmd(cmd="stall", after_bytes=after, direction="s2c", seconds=3 * deadline, count=1)
    c.fault_begin(f"proxy stalls the next connection to {RECEIVER} after {after} bytes s2c "
                  f"(upload answers: {sorted(set(totals))} bytes), for {3 * deadline} s")
    c.wait_until(lambda: p.stats()["stalls"] >= 1, 90, "the proxy's stall")
    ev = p.events("stall")[0]
    t_stall = ev["ts"]
    c.wait_until(lambda: any(e.get("conn") == ev["conn"] and e["event"] in
                             ("resume", "rst", "close") for e in p.events()),
                 4 * deadline, "the stalled connection to resume or close")
    c.fault_end()
    r = c.wait_result(cid)
    ss = sends(c, cid, aliases=[p.endpoint])
    broken = next((s for s in ss if s["t"] >= t_stall - 0.01 and s["code"] not in NOT_BROKEN),
                  None)
    if broken is None:
        c.violation(f"no failed send to {RECEIVER} after the stall (sends: "
                    f"{[(s['duchy'], s['stage'], s['code']) for s in ss]})")
        return
    ok = next((s for s in ss if s["t"] > broken["t"] and s["duchy"] == broken["duchy"] and
               s["stage"] == broken["stage"] and s["code"] in ("sent", "skipped")), None)
    if ok is None:
        c.violation(f"{broken['duchy']}: the {broken['stage']} send was never retried to "
                    f"success after {broken['code']} {broken['msg']}")
        return
    snum = stage_number(1, f"WAIT_{broken['stage']}_INPUTS")
    rows = c.dq(RECEIVER, "SELECT size, created_at FROM blobs WHERE computation = ? AND "
                "stage = ? AND slot = ?", (cid, snum, broken["duchy"]))
    aud = [d for (d,) in c.dq(RECEIVER, "SELECT detail FROM audit_log WHERE computation = ? "
                              "AND stage = ? AND event = 'input_received'", (cid, snum))
           if f"from={broken['duchy']} " in d + " "]
    if len(rows) != 1:
        c.violation(f"{RECEIVER}: {len(rows)} committed inputs of {broken['duchy']} at "
                    f"{broken['stage']}")
        return
    committed = rows[0][1] / 1e6
    # the point of the case: the stalled call had committed (before the sender gave up)
    if not committed < broken["t"]:
        c.violation(f"{RECEIVER}: the input was committed {committed - broken['t']:.2f} s after "
                    f"the stalled send ended: the stall did not hide a committed answer")
    if len({d.split("sha256=")[-1] for d in aud}) != 1:
        c.violation(f"{RECEIVER}: input_received rows with different hashes: {aud}")
    c.notes.append(f"{broken['duchy']} -> {RECEIVER} {broken['stage']}: committed "
                   f"{committed - t_stall:+.2f} s from the stall of the answer; sender gave up "
                   f"{broken['t'] - t_stall:.1f} s later ({broken['code']}); retry: {ok['code']} "
                   f"{ok['msg'][:60]} (attempt {ok['attempt']}); {len(aud)} input_received "
                   f"audit row(s): {[d.split(' sha256=')[0] for d in aud]}")
