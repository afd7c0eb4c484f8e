"""faultlib.py - the harness of the fault matrix (tools/fault-matrix, tests/fault/).

One case = one fresh federation (tools/federation up: the test Kingdom, three duchies under
deploy/duchy-supervise, the EDP simulators) in its own temp dir, small sketches and leases of
a few seconds, one injected fault, then the invariants of issue 7 checked by `Case.verdict`:

  I1  every measurement the case created ends as the case expected: SUCCEEDED with the
      noise-free golden answer (LLv2: the MC's plaintext estimate and frequency, exactly;
      HMSS: the ground truth), or FAILED with a permanent reason recorded locally (an
      attempt's error text, ending_reason FAILED) and at the Kingdom (failure_message or a
      participant's failure);
  I2  no (computation, stage, slot) has two committed outputs with different hashes: the
      blob table's rows agree with the files (size and SHA-256), and the audit log never
      records two different hashes for one input slot;
  I3  nothing stays non-terminal longer than lease + retry budget after the fault ended
      (every duchy's computations and the Kingdom's all terminal by then);
      recovery_seconds = from the end of the fault to the last terminal state;
  I4  PRAGMA integrity_check = ok on every database (three duchies, the Kingdom);
  I5  every line of every duchy log parses as JSON and names the duchy, and every line
      that names a computation also names its stage; every audit row names its actor,
      computation and stage, and the chain verifies (duchyctl audit verify);
  I6  no orphan worker (no duchy-mill left while nothing runs; after down no process of
      the federation), no temporary blob (.tmp.* files, spool files) left.

A case is a function `def case_x(c: Case)` registered with `@case(name, ...)`; it calls
c.up(...), c.create(...), waits for a moment, marks c.fault_begin()/c.fault_end() around
the injection, adds its own checks with c.violation(...), and returns; the runner then
waits for every computation to end, checks I1-I6, tears the federation down and prints one
JSON line.  Everything here uses the real binaries (DY_BUILD, default build/) and reads the
SQLite files read-only.  Python 3 standard library only.
"""

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DUCHIES = ("worker1", "worker2", "aggregator")
# Protocol numbers and their COMPLETE stage (common/stages.h).
COMPLETE = {1: 13, 2: 9, 3: 9}
CASES = {}
# Stage names -> numbers per protocol (proto/control.proto).
STAGES = {
    1: ["STAGE_UNSPECIFIED", "INITIALIZATION_PHASE", "WAIT_REQUISITIONS_AND_KEY_SET",
        "CONFIRMATION_PHASE", "WAIT_TO_START", "WAIT_SETUP_PHASE_INPUTS", "SETUP_PHASE",
        "WAIT_EXECUTION_PHASE_ONE_INPUTS", "EXECUTION_PHASE_ONE",
        "WAIT_EXECUTION_PHASE_TWO_INPUTS", "EXECUTION_PHASE_TWO",
        "WAIT_EXECUTION_PHASE_THREE_INPUTS", "EXECUTION_PHASE_THREE", "COMPLETE"],
    2: ["STAGE_UNSPECIFIED", "INITIALIZATION_PHASE", "WAIT_REQUISITIONS_AND_KEY_SET",
        "CONFIRMATION_PHASE", "WAIT_TO_START", "WAIT_SETUP_PHASE_INPUTS", "SETUP_PHASE",
        "WAIT_EXECUTION_PHASE_INPUTS", "EXECUTION_PHASE", "COMPLETE"],
    3: ["STAGE_UNSPECIFIED", "INITIALIZED", "WAIT_TO_START", "WAIT_ON_SHUFFLE_INPUT_PHASE_ONE",
        "SETUP_PHASE", "WAIT_ON_SHUFFLE_INPUT_PHASE_TWO", "WAIT_ON_AGGREGATION_INPUT",
        "SHUFFLE_PHASE", "AGGREGATION_PHASE", "COMPLETE"],
}


def stage_number(protocol, name):
    return STAGES[protocol].index(name)


def reached(stage):
    """A wait_stage predicate: the computation exists here and is at STAGE or later."""
    return lambda s: s is not None and s >= stage


class CaseFailed(Exception):
    """Raised by a case step that cannot go on (the message becomes a violation)."""


def case(name, limit=240, budget=90, doc=""):
    """Registers a case: limit = its whole time limit (s); budget = I3's lease + retry
    budget (s) after the fault ended."""
    def reg(fn):
        CASES[name] = {"fn": fn, "limit": limit, "budget": budget,
                       "doc": doc or (fn.__doc__ or "").strip().split("\n")[0]}
        return fn
    return reg


def build_dir():
    b = os.environ.get("DY_BUILD", "build")
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def now():
    return time.monotonic()


class Case:
    """One run of one case: its federation, its measurements, its violations."""

    def __init__(self, name, seed, keep=None, verbose=False):
        self.name = name
        self.seed = seed
        self.rng = random.Random(f"{name}/{seed}")
        self.build = build_dir()
        self.dir = tempfile.mkdtemp(prefix="fm-", dir=os.environ.get("DY_FAULT_TMP", "/tmp"))
        if os.environ.get("DY_FAULT_DIRFILE"):  # for the runner's clean-up after a time-out
            with open(os.environ["DY_FAULT_DIRFILE"], "w") as f:
                f.write(self.dir + "\n")
        self.keep = keep
        self.verbose = verbose
        self.violations = []
        self.notes = []
        self.measurements = []  # {"name", "protocol", "expect", "result"}
        self.fault_t0 = None
        self.fault_t1 = None
        self.lease = 4.0
        self.fed = None
        self.mounts = []
        self.held = set()      # pids stopped with SIGSTOP (continued at teardown)
        self.sids = set()      # session leaders started by tools/federation
        self.extra_procs = []  # Popen objects of helpers (proxy, flooders)

    # ---- output -----------------------------------------------------------------------

    def log(self, msg):
        if self.verbose:
            print(f"[{self.name} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def violation(self, msg):
        self.log("VIOLATION " + msg)
        self.violations.append(msg)

    def require(self, cond, msg):
        if not cond:
            raise CaseFailed(msg)

    # ---- processes --------------------------------------------------------------------

    def run(self, args, timeout=60, check=True, env=None, input=None):
        """Runs a command, returns CompletedProcess (stdout text); raises CaseFailed if it
        fails and check."""
        e = dict(os.environ, DY_BUILD=self.build)
        if env:
            e.update(env)
        try:
            p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=e,
                               input=input)
        except subprocess.TimeoutExpired:
            raise CaseFailed(f"{os.path.basename(args[0])} {args[1] if len(args) > 1 else ''}: "
                             f"no answer in {timeout} s")
        if check and p.returncode != 0:
            raise CaseFailed(f"{' '.join(os.path.basename(a) if i == 0 else a for i, a in enumerate(args[:3]))}"
                             f" exit {p.returncode}: {p.stderr.strip()[-300:]}")
        return p

    def last_json(self, text):
        for line in reversed(text.strip().splitlines()):
            line = line.strip()
            if line.startswith("{") or line.startswith("["):
                return json.loads(line)
        raise CaseFailed(f"no JSON in output: {text[-200:]!r}")

    def tool(self, rel):
        return os.path.join(self.build, rel)

    # ---- the federation ---------------------------------------------------------------

    def up(self, population=20000, reach=500, lease="4s", backoff=0.02, edps=3, claimers=1,
           sets=(), sketch=20000, workers=2, mill_threads=1, extra=(), tmpfs=None):
        """Starts the federation (tools/federation up) with small sizes and short leases.
        tmpfs = {duchy: size}: that duchy's data directory is a tmpfs of that size
        (mount -t tmpfs -o size=SIZE; unmounted at clean-up)."""
        self.lease = float(lease.rstrip("s"))
        for d, size in (tmpfs or {}).items():
            data = os.path.join(self.dir, d, "data")
            os.makedirs(data, exist_ok=True)
            p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                                data], capture_output=True, text=True)
            if p.returncode != 0:
                raise CaseFailed(f"mount tmpfs on {data}: {p.stderr.strip()}")
            self.mounts.append(data)
        args = [os.path.join(ROOT, "tools", "federation"), "up", "--dir", self.dir,
                "--edps", str(edps), "--population", str(population), "--reach", str(reach),
                "--seed", str(self.seed), "--lease", lease, "--backoff-scale", str(backoff),
                "--claimers", str(claimers), "--sketch-size", str(sketch),
                "--workers", str(workers), "--mill-threads", str(mill_threads), "--json"]
        for s in sets:
            args += ["--set", s]
        args += list(extra)
        try:
            p = self.run(args, timeout=150)
        finally:
            self._note_sids()
        self.fed = self.last_json(p.stdout)
        self.log(f"federation up in {self.dir}")
        return self.fed

    def _note_sids(self):
        try:
            for line in open(os.path.join(self.dir, "pids")):
                n, p = line.split()
                self.sids.add(int(p))
        except (OSError, ValueError):
            pass

    def down(self):
        for pid in list(self.held):
            self.cont(pid)
        for p in self.extra_procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        self._note_sids()
        if os.path.exists(os.path.join(self.dir, "pids")):
            self.run([os.path.join(ROOT, "tools", "federation"), "down", "--dir", self.dir,
                      "--grace", "20"], timeout=90, check=False)

    def restart(self, duchy):
        self.run([os.path.join(ROOT, "tools", "federation"), "restart", "--dir", self.dir,
                  "--duchy", duchy, "--grace", "20"], timeout=120)
        self._note_sids()

    def ddir(self, duchy):
        return os.path.join(self.dir, duchy)

    def db(self, duchy):
        return os.path.join(self.dir, duchy, "data", "duchy.db")

    def logfile(self, duchy):
        return os.path.join(self.dir, "logs", duchy + ".log")

    def admin(self, duchy):
        return f"ipc://{self.dir}/{duchy}/run/admin.sock"

    def ctl(self, duchy, *args, timeout=15, check=True):
        p = self.run([self.tool("tools/duchyctl"), "--admin", self.admin(duchy)] + list(args)
                     + ["--json"], timeout=timeout, check=check)
        return self.last_json(p.stdout) if p.returncode == 0 else None

    def supervisor(self, duchy):
        try:
            with open(os.path.join(self.dir, duchy, "run", "supervisor.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def actor_pid(self, duchy, name):
        """The pid of actor NAME ("duchy-herald", "duchy-claimer-1", ...) per the supervisor."""
        for a in self.supervisor(duchy).get("actors", []):
            if a.get("name") == name and a.get("state") == "running":
                return int(a["pid"])
        return None

    def supervisor_pid(self, duchy):
        p = self.supervisor(duchy).get("supervisor_pid")
        return int(p) if p else None

    def wait_actor_restarted(self, duchy, name, old_pid, timeout=30):
        """Until the supervisor runs NAME again under a new pid (and it is ready)."""
        t = now() + timeout
        while now() < t:
            p = self.actor_pid(duchy, name)
            if p and p != old_pid and alive(p):
                return p
            time.sleep(0.1)
        raise CaseFailed(f"{duchy}/{name} not restarted within {timeout} s")

    def kill(self, pid, sig=signal.SIGKILL):
        self.log(f"signal {sig} to {pid} ({proc_name(pid)})")
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, pid):
        self.held.add(pid)
        self.kill(pid, signal.SIGSTOP)

    def stop_outside_tx(self, pid, duchy, tries=200):
        """SIGSTOP pid, but not while it holds DUCHY's store write lock (the WAL write
        lock: a POSIX lock on byte 120 of duchy.db-shm, see /proc/locks): a process frozen
        mid-transaction blocks every writer of the duchy, which is another fault than the
        one a case means (a claimer frozen between its store calls).  Re-stopped a few
        milliseconds later until it is outside; the tries are noted."""
        shm = os.path.join(self.dir, duchy, "data", "duchy.db-shm")
        for i in range(tries):
            self.stop(pid)
            try:
                ino = os.stat(shm).st_ino
                with open("/proc/locks") as f:
                    locked = any(len(w) >= 8 and w[4] == str(pid) and
                                 w[5].rsplit(":", 1)[-1] == str(ino) and w[6] == "120"
                                 for w in (line.split() for line in f))
            except OSError:
                locked = False
            if not locked:
                if i:
                    self.notes.append(f"pid {pid} stopped outside a store transaction "
                                      f"after {i} retr{'y' if i == 1 else 'ies'}")
                return
            self.cont(pid)
            time.sleep(0.003)
        raise CaseFailed(f"pid {pid} kept {duchy}'s store write lock through {tries} stops")

    def cont(self, pid):
        self.held.discard(pid)
        self.kill(pid, signal.SIGCONT)

    def mills(self):
        """{pid: (ppid, cmdline)} of the duchy-mill processes of this federation (children
        of its actors)."""
        actors = self.all_actor_pids()
        return {pid: (ppid, cmd) for pid, ppid, cmd in processes()
                if "duchy-mill" in cmd.split(" ")[0] and ppid in actors}

    def all_actor_pids(self):
        s = set()
        for d in DUCHIES:
            s |= {a["pid"] for a in self.supervisor(d).get("actors", [])}
        return s

    # ---- SQLite (read-only) -----------------------------------------------------------

    def q(self, path, sql, args=()):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def dq(self, duchy, sql, args=()):
        return self.q(self.db(duchy), sql, args)

    def kq(self, sql, args=()):
        return self.q(os.path.join(self.dir, "kingdom", "kingdom.db"), sql, args)

    def comp_row(self, duchy, cid):
        r = self.dq(duchy, "SELECT protocol, stage, ending_reason, lease_owner, next_attempt "
                    "FROM computations WHERE id = ?", (cid,))
        return r[0] if r else None

    def stage_of(self, duchy, cid):
        r = self.comp_row(duchy, cid)
        return r[1] if r else None

    def attempts(self, duchy, cid):
        return self.dq(duchy, "SELECT stage, attempt, owner, end_reason, error FROM stage_attempts "
                       "WHERE computation = ? ORDER BY stage, attempt", (cid,))

    # ---- measurements -----------------------------------------------------------------

    def create(self, protocol, expect="succeed", noise="none", edps=None, extra=()):
        """Creates a measurement through duchy-mc; expect: succeed | fail | either.
        Returns the local computation id (the name's last segment)."""
        args = [self.tool("tools/duchy-mc"), "create", "--dir", self.dir, "--protocol", protocol,
                "--noise", noise, "--json"]
        if not protocol.endswith("reach-only"):
            args += ["--max-frequency", "10"]
        if edps:
            args += ["--edps", edps]
        args += list(extra)
        out = self.last_json(self.run(args, timeout=30).stdout)
        m = {"name": out["measurement"], "protocol": protocol, "expect": expect, "result": None,
             "cid": out["measurement"].rsplit("/", 1)[-1], "created": now()}
        self.measurements.append(m)
        self.log(f"created {m['cid']} ({protocol}, expect {expect})")
        return m["cid"]

    def wait_result(self, cid, timeout=100):
        m = self.meas(cid)
        if m["result"] is not None:
            return m["result"]
        p = self.run([self.tool("tools/duchy-mc"), "wait", "--dir", self.dir, m["name"],
                      "--timeout", str(timeout), "--json"], timeout=timeout + 20, check=False)
        try:
            m["result"] = self.last_json(p.stdout)
        except (CaseFailed, ValueError):
            m["result"] = {"state": "NO_RESULT", "error": p.stderr.strip()[-300:]}
        m["done"] = now()
        self.log(f"{cid}: {m['result'].get('state')}")
        return m["result"]

    def meas(self, cid):
        for m in self.measurements:
            if m["cid"] == cid:
                return m
        raise KeyError(cid)

    def wait_stage(self, duchy, cid, pred, timeout=60, what="stage", poll=0.05):
        """Until pred(stage) holds at DUCHY (stage number; None = not there yet)."""
        t = now() + timeout
        while now() < t:
            try:
                s = self.stage_of(duchy, cid)
            except sqlite3.Error:
                s = None
            if pred(s):
                return s
            time.sleep(poll)
        raise CaseFailed(f"{duchy}: {cid} never reached the {what} within {timeout} s "
                         f"(stage {self.stage_of(duchy, cid)})")

    def wait_worker(self, duchy, cid, timeout=60, min_age=0.0, stages=None):
        """Until duchyctl workers at DUCHY lists a mill for CID (in one of STAGES, names, if
        given) that is alive and at least min_age seconds old; returns its entry
        {"pid", "computation", "stage", "attempt", ...} plus "ppid" (its claimer)."""
        t = now() + timeout
        seen = {}
        while now() < t:
            try:
                ws = self.ctl(duchy, "workers", timeout=5, check=False) or []
            except (CaseFailed, ValueError):
                ws = []
            if isinstance(ws, dict):
                ws = ws.get("workers", [])
            for w in ws:
                if w.get("computation") != cid or (stages and w.get("stage") not in stages):
                    continue
                pid = w.get("pid")
                if not pid or not alive(pid):
                    continue
                seen.setdefault(pid, now())
                if now() - seen[pid] >= min_age:
                    w["ppid"] = ppid_of(pid)
                    return w
            time.sleep(0.02)
        raise CaseFailed(f"{duchy}: no mill for {cid} ran within {timeout} s")

    def check_retried(self, duchy, cid, stage, attempt, reasons, error_has=None):
        """The fault's attempt ATTEMPT of STAGE (number) at DUCHY ended with one of REASONS
        (and its error text contains error_has, if given), and, if the measurement
        SUCCEEDED, a later attempt of the stage SUCCEEDED.  Records violations; returns
        (that attempt's row or None, the later rows)."""
        rows = [x for x in self.attempts(duchy, cid) if x[0] == stage]
        first = next((x for x in rows if x[1] == attempt), None)
        later = [x for x in rows if x[1] > attempt]
        if not first or first[3] not in reasons or (error_has and error_has not in (first[4] or "")):
            self.violation(f"{duchy}: the fault's attempt {attempt} of stage {stage} did not end "
                           f"{'/'.join(reasons)}{' with ' + error_has if error_has else ''}: {first}")
        if (self.meas(cid).get("result") or {}).get("state") == "SUCCEEDED" and \
                not any(x[3] == "SUCCEEDED" for x in later):
            self.violation(f"{duchy}: stage {stage} was not retried to success: {rows}")
        return first, later

    def stop_duchy(self, duchy, timeout=40):
        """SIGTERM to DUCHY's supervisor (a drain) and wait until it exited; returns its pid."""
        sup = self.supervisor_pid(duchy)
        self.kill(sup, signal.SIGTERM)
        self.wait_until(lambda: not alive(sup), timeout, f"{duchy} to drain and exit")
        return sup

    def fault_begin(self, what=""):
        self.fault_t0 = now()
        self.log(f"fault begins: {what}")

    def fault_end(self):
        self.fault_t1 = now()
        self.log("fault ends")

    def wait_until(self, pred, timeout, what):
        t = now() + timeout
        while now() < t:
            if pred():
                return True
            time.sleep(0.1)
        raise CaseFailed(f"timed out after {timeout} s waiting for {what}")

    # ---- the verdict ------------------------------------------------------------------

    def all_terminal(self):
        """True when every computation at every duchy and the Kingdom is terminal."""
        for d in DUCHIES:
            try:
                r = self.dq(d, "SELECT count(*) FROM computations WHERE ending_reason IS NULL")
            except sqlite3.Error:
                return False
            if r[0][0]:
                return False
        try:
            r = self.kq("SELECT count(*) FROM measurements WHERE state NOT IN (3, 4, 5)")
        except sqlite3.Error:
            return False
        return r[0][0] == 0

    def verdict(self, budget):
        """Checks I1-I6 (the federation still up); returns recovery_seconds."""
        fault_end = self.fault_t1 or self.fault_t0 or now()
        # I1: each measurement as expected.
        for m in self.measurements:
            r = self.wait_result(m["cid"], timeout=max(30, int(budget)))
            self.check_result(m, r)
        # I3: everything terminal within the budget after the fault.
        deadline = fault_end + budget
        while now() < deadline and not self.all_terminal():
            time.sleep(0.1)
        recovery = now() - fault_end
        if not self.all_terminal():
            left = []
            for d in DUCHIES:
                try:
                    left += [f"{d}:{i}@{s}" for i, s in self.dq(
                        d, "SELECT id, stage FROM computations WHERE ending_reason IS NULL")]
                except sqlite3.Error as e:
                    left.append(f"{d}: {e}")
            self.violation(f"I3: not terminal {budget:.0f} s after the fault: {', '.join(left) or 'the Kingdom'}")
        else:
            recovery = self._recovery(fault_end)
        self.check_i2()
        self.check_i4()
        self.check_i6_running()
        self.check_audit()
        return recovery

    def _recovery(self, fault_end):
        """Seconds from the fault's end to the last terminal state (from the MC's view:
        the last measurement's result arrival, or the duchies' last update)."""
        last = max([m.get("done", fault_end) for m in self.measurements] + [fault_end])
        # the duchies' last update, in wall time, mapped to monotonic
        wall_now, mono_now = time.time(), now()
        for d in DUCHIES:
            try:
                (u,), = self.dq(d, "SELECT coalesce(max(updated_at), 0) FROM computations")
            except sqlite3.Error:
                continue
            if u:
                t = u / 1e6 if u > 1e14 else (u / 1e3 if u > 1e11 else u)
                last = max(last, mono_now - (wall_now - t))
        return max(0.0, last - fault_end)

    def check_result(self, m, r):
        state = r.get("state")
        if m["expect"] in ("succeed", "either") and state == "SUCCEEDED":
            errs = golden_errors(m["protocol"], r)
            for e in errs:
                self.violation(f"I1: {m['cid']}: {e}")
            return
        if m["expect"] in ("fail", "either") and state == "FAILED":
            self.check_failed_recorded(m["cid"])
            return
        self.violation(f"I1: {m['cid']} ({m['protocol']}) ended {state}, expected {m['expect']}"
                       + (f" ({r.get('error')})" if r.get("error") else ""))

    def check_failed_recorded(self, cid):
        """I1 for a FAILED computation: a permanent reason recorded locally (a FAILED row
        with an attempt's error text, or the herald's computation_failed audit row for one
        refused before it had a row) and at the Kingdom (the measurement's failure message
        or a participant's failure)."""
        local = []
        for d in DUCHIES:
            try:
                row = self.comp_row(d, cid)
                errs = [e for (_, _, _, _, e) in self.attempts(d, cid) if e]
                audit = [x for (x,) in self.dq(d, "SELECT detail FROM audit_log WHERE "
                                               "computation = ? AND event = "
                                               "'computation_failed'", (cid,))]
            except sqlite3.Error:
                continue
            if row and row[2] == "FAILED" and errs:
                local.append((d, errs[-1]))
            elif audit:
                local.append((d, audit[-1]))
        if not local:
            self.violation(f"I1: {cid} FAILED but no duchy recorded a reason locally")
        kid = kingdom_id(cid)
        k = self.kq("SELECT coalesce(failure_message, '') FROM measurements WHERE id = ?", (kid,))
        kp = self.kq("SELECT count(*) FROM participants WHERE computation = ? AND failure IS "
                     "NOT NULL", (kid,))[0][0]
        if not (k and k[0][0]) and not kp:
            self.violation(f"I1: {cid} FAILED but the Kingdom holds no reason")
        self.notes.append(f"{cid} failed: " + "; ".join(f"{d}: {e}" for d, e in local)[:300]
                          + (f" | Kingdom: {k[0][0][:200]}" if k and k[0][0] else ""))

    def check_i2(self):
        for d in DUCHIES:
            try:
                rows = self.dq(d, "SELECT computation, stage, slot, path, size, sha256 FROM blobs")
            except sqlite3.Error as e:
                self.violation(f"I2: {d}: {e}")
                continue
            for comp, stage, slot, path, size, sha in rows:
                try:
                    h = hashlib.sha256()
                    n = 0
                    with open(path, "rb") as f:
                        while True:
                            b = f.read(1 << 20)
                            if not b:
                                break
                            h.update(b)
                            n += len(b)
                except OSError as e:
                    self.violation(f"I2: {d}: {comp}/{stage}/{slot}: {e.strerror}")
                    continue
                if n != size or h.digest() != bytes(sha):
                    self.violation(f"I2: {d}: {comp}/{stage}/{slot}: the file differs from its "
                                   f"committed size/hash")
            # audit: one hash per input slot
            seen = {}
            for comp, stage, detail in self.dq(d, "SELECT computation, stage, detail FROM audit_log "
                                                  "WHERE event = 'input_received'"):
                kv = dict(x.split("=", 1) for x in detail.split() if "=" in x)
                key = (comp, stage, kv.get("from"))
                if kv.get("sha256"):
                    if key in seen and seen[key] != kv["sha256"]:
                        self.violation(f"I2: {d}: {comp} stage {stage} from {kv.get('from')}: "
                                       f"two inputs with different hashes")
                    seen.setdefault(key, kv["sha256"])

    def check_i4(self):
        paths = [(d, self.db(d)) for d in DUCHIES] + \
                [("kingdom", os.path.join(self.dir, "kingdom", "kingdom.db"))]
        for name, p in paths:
            try:
                r = self.q(p, "PRAGMA integrity_check")
            except sqlite3.Error as e:
                self.violation(f"I4: {name}: {e}")
                continue
            if r != [("ok",)]:
                self.violation(f"I4: {name}: integrity_check: {r[:3]}")

    def check_i6_running(self):
        """Once everything is terminal: no mill runs, no worker listed, no temp blob."""
        t = now() + 10
        while now() < t and self.mills():
            time.sleep(0.2)
        for pid, (ppid, cmd) in self.mills().items():
            self.violation(f"I6: mill {pid} (parent {ppid}) still runs after the end")
        for d in DUCHIES:
            try:
                ws = self.ctl(d, "workers", timeout=10, check=False)
            except CaseFailed as e:
                self.violation(f"I6: {d}: duchyctl workers: {e}")
                continue
            if isinstance(ws, dict):
                ws = ws.get("workers", [])
            if ws:
                self.violation(f"I6: {d}: workers still listed: {ws}")
            data = os.path.join(self.dir, d, "data")
            for base, _, files in os.walk(data):
                for f in files:
                    if f.startswith(".tmp."):
                        self.violation(f"I6: {d}: temporary blob {os.path.join(base, f)}")
            spool = os.path.join(data, "spool")
            if os.path.isdir(spool) and os.listdir(spool):
                self.violation(f"I6: {d}: spool not empty: {os.listdir(spool)[:3]}")

    def check_audit(self):
        """I5 for the audit log: rows name actor, computation, stage; the chain verifies."""
        for d in DUCHIES:
            try:
                bad = self.dq(d, "SELECT count(*) FROM audit_log WHERE actor = '' OR computation = ''")
            except sqlite3.Error as e:
                self.violation(f"I5: {d}: audit: {e}")
                continue
            if bad[0][0]:
                self.violation(f"I5: {d}: {bad[0][0]} audit rows without actor or computation")
            try:
                v = self.ctl(d, "audit", "verify", timeout=20, check=False)
            except CaseFailed as e:
                self.violation(f"I5: {d}: audit verify: {e}")
                continue
            if not v or v.get("ok") is not True:
                self.violation(f"I5: {d}: audit verify: {v}")

    def check_logs(self):
        """I5 for the logs (after down, so that the files are complete)."""
        for d in DUCHIES:
            n = 0
            try:
                f = open(self.logfile(d), errors="replace")
            except OSError as e:
                self.violation(f"I5: {d}: {e}")
                continue
            with f:
                for i, line in enumerate(f, 1):
                    line = line.rstrip("\n")
                    if not line:
                        continue
                    try:
                        j = json.loads(line)
                    except ValueError:
                        n += 1
                        if n <= 1:
                            self.violation(f"I5: {d}.log:{i}: not JSON: {line[:100]}")
                        continue
                    if j.get("duchy") != d:
                        n += 1
                        if n <= 1:
                            self.violation(f"I5: {d}.log:{i}: no duchy: {line[:100]}")
                    elif "computation" in j and "stage" not in j:
                        n += 1
                        if n <= 1:
                            self.violation(f"I5: {d}.log:{i}: computation without stage: {line[:120]}")
            if n > 1:
                self.violation(f"I5: {d}.log: {n - 1} more bad lines")

    def check_i6_after_down(self):
        left = []
        for pid, ppid, cmd in processes():
            if self.dir in cmd or (self.sids and session_of(pid) in self.sids):
                left.append(f"{pid} {cmd[:80]}")
        if left:
            self.violation(f"I6: still running after down: {left[:3]}")
            for x in left:
                try:
                    os.kill(int(x.split()[0]), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass

    def cleanup(self):
        if self.keep:
            dst = os.path.join(self.keep, self.name)
            subprocess.run(["rm", "-rf", dst])
            os.makedirs(self.keep, exist_ok=True)
            subprocess.run(["cp", "-a", self.dir, dst])
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-l", m], capture_output=True)
        subprocess.run(["rm", "-rf", self.dir])


# ---- helpers ------------------------------------------------------------------------------

def golden_errors(protocol, r):
    """What differs from the noise-free golden answer (empty = exact)."""
    errs = []
    if r.get("signature_verified") is not True:
        errs.append("signature not verified")
    llv2 = protocol.startswith("llv2")
    want = r.get("plaintext_estimate") if llv2 else r.get("true_reach")
    if r.get("reach") != want:
        errs.append(f"reach {r.get('reach')} != golden {want}")
    if not protocol.endswith("reach-only"):
        exact = r.get("plaintext_frequency") if llv2 else r.get("true_frequency")
        if (r.get("frequency") or {}) != (exact or {}):
            errs.append("frequency differs from the golden answer")
    return errs


def kingdom_id(cid):
    """The Kingdom's integer id of a computation from its external id (8 bytes, base64url,
    big-endian: common/util.c dy_ext_id_*)."""
    import base64
    v = int.from_bytes(base64.urlsafe_b64decode(cid + "=" * (-len(cid) % 4)), "big")
    return v - (1 << 64) if v >= 1 << 63 else v  # SQLite INTEGER is signed


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def proc_name(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.path.basename(f.read().split(b"\0")[0].decode(errors="replace"))
    except OSError:
        return "?"


def processes():
    """[(pid, ppid, cmdline)] of every live process."""
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
            if st[0] == "Z":
                continue
            with open(f"/proc/{e}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
        if cmd:
            out.append((int(e), int(st[1]), cmd))
    return out


def ppid_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def session_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[3])
    except (OSError, IndexError, ValueError):
        return None


def run_case(name, seed, keep=None, verbose=False):
    """Runs one registered case in this process; returns its JSON verdict (a dict)."""
    spec = CASES[name]
    c = Case(name, seed, keep=keep, verbose=verbose)
    t0 = now()
    recovery = None
    try:
        try:
            spec["fn"](c)
            if c.fault_t0 is None:
                c.violation("the case injected no fault")
            recovery = c.verdict(spec["budget"])
        except CaseFailed as e:
            c.violation(f"case: {e}")
        except Exception as e:  # a harness bug is a failure too, with its text
            import traceback
            c.violation(f"harness: {type(e).__name__}: {e}")
            if verbose:
                traceback.print_exc()
        finally:
            c.down()
            c.check_i6_after_down()
            if c.fed:
                c.check_logs()
    finally:
        c.cleanup()
    if recovery is None:  # the case stopped early: the time since the fault, if any
        recovery = now() - (c.fault_t1 or c.fault_t0) if c.fault_t0 else 0.0
    out = {"fault": name, "seed": seed, "result": "fail" if c.violations else "pass",
           "violations": c.violations, "recovery_seconds": round(recovery, 2),
           "seconds": round(now() - t0, 1)}
    if c.notes:
        out["notes"] = c.notes
    return out
