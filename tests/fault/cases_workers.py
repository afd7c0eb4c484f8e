"""cases_workers.py - fault cases on the crypto workers and the claimers (issue 7):
a mill killed mid-stage, a claimer frozen past its lease while a second claimer takes the
work over, a mill frozen past its deadline, a mill over its memory limit.
Each case is registered with faultlib.case and run by tools/fault-matrix."""

import signal
import time

from faultlib import alive, case, now, stage_number


@case("kill-mill", limit=200, budget=60,
      doc="kill -9 a crypto worker mid-stage: attempt 1 FAILED, attempt 2 completes")
def kill_mill(c):
    c.up()
    cid = c.create("llv2")
    # the aggregator's first crypto stage after setup (the heaviest ones are later)
    w = c.wait_worker("aggregator", cid, timeout=90, min_age=0.2)
    pid = w["pid"]
    c.fault_begin(f"SIGKILL mill {pid} ({w.get('stage')}, attempt {w.get('attempt')})")
    c.kill(pid, signal.SIGKILL)
    c.fault_end()
    c.wait_result(cid)
    # the killed attempt is recorded as FAILED (or LOCK_OVERWRITTEN), and a later attempt
    # of the same stage SUCCEEDED
    first, _ = c.check_retried("aggregator", cid, stage_number(1, w["stage"]), w["attempt"],
                               ("FAILED", "LOCK_OVERWRITTEN"))
    c.notes.append(f"killed attempt: {first[4] if first else '-'}")


@case("claimer-lease-takeover", limit=220, budget=60,
      doc="SIGSTOP a claimer past its lease: a second claimer takes over; the first's late "
          "write is refused (LOCK_OVERWRITTEN)")
def claimer_lease_takeover(c):
    c.up(claimers=2, lease="3s")
    cid = c.create("llv2")
    w = c.wait_worker("aggregator", cid, timeout=90, min_age=0.1)
    pid, ppid = w["pid"], w["ppid"]
    stage, attempt = w["stage"], w["attempt"]
    snum = stage_number(1, stage)
    c.fault_begin(f"SIGSTOP claimer {ppid} (its mill {pid}: {stage} attempt {attempt})")
    c.stop_outside_tx(ppid, "aggregator")
    # the other claimer takes the stage over once the lease (3 s) expired
    c.wait_until(lambda: any(s == snum and a > attempt for s, a, o, e, err
                             in c.attempts("aggregator", cid)), 40,
                 "a second claimer's attempt of the stage")
    taken = now()
    time.sleep(2)
    c.cont(ppid)
    c.fault_end()
    c.wait_result(cid)
    first, second = c.check_retried("aggregator", cid, snum, attempt, ("LOCK_OVERWRITTEN",))
    if not second or second[0][2] == (first[2] if first else None):
        c.violation(f"no other claimer took the stage over: {second}")
    # the frozen claimer, continued, noticed and wrote nothing (it logs the lost lease)
    lost = [l for l in open(c.logfile("aggregator")) if f'"pid":{ppid},' in l and
            ("lease" in l.lower() or "aborted" in l.lower() or "overwritten" in l.lower())]
    if not lost:
        c.violation(f"claimer {ppid} logged nothing about its lost lease after SIGCONT")
    c.notes.append(f"take-over {taken - c.fault_t0:.1f} s after SIGSTOP; claimer said: "
                   + (lost[0].split('"msg":')[-1].strip()[:120] if lost else "-"))


@case("mill-deadline", limit=220, budget=60,
      doc="SIGSTOP a crypto worker past its deadline: killed, attempt recorded, stage retried")
def mill_deadline(c):
    c.up(sets=["aggregator:duchy.mill_deadline=6s"])
    cid = c.create("llv2")
    # a stage long enough to be caught running (the short ones end within milliseconds)
    w = c.wait_worker("aggregator", cid, timeout=90,
                      stages=("EXECUTION_PHASE_ONE", "EXECUTION_PHASE_TWO"))
    pid = w["pid"]
    snum = stage_number(1, w["stage"])
    c.fault_begin(f"SIGSTOP mill {pid} ({w['stage']} attempt {w['attempt']}), deadline 6 s")
    c.stop(pid)
    c.wait_until(lambda: not alive(pid), 20,
                 "the claimer to kill the stopped mill at its deadline")
    c.held.discard(pid)
    killed = now() - c.fault_t0
    c.fault_end()
    c.wait_result(cid)
    first, _ = c.check_retried("aggregator", cid, snum, w["attempt"], ("FAILED",), "deadline")
    c.notes.append(f"killed {killed:.1f} s after SIGSTOP: {first[4] if first else '-'}")


@case("mill-memory", limit=240, budget=90,
      doc="a worker over its memory limit: clean failure, recorded, retried, then permanent")
def mill_memory(c):
    c.up(sets=["aggregator:duchy.mill_memory=64MiB", "aggregator:duchy.max_attempts=3"],
         population=200000, reach=20000, sketch=100000)
    c.fault_begin("aggregator mills limited to 64 MiB of address space")
    cid = c.create("llv2", expect="fail")
    r = c.wait_result(cid, timeout=150)
    c.fault_end()
    if r.get("state") != "FAILED":
        return  # I1 reports it
    rows = c.attempts("aggregator", cid)
    failed = [x for x in rows if x[3] == "FAILED"]
    mem = [x for x in failed if "memory" in (x[4] or "").lower()]
    if len(mem) < 3:
        c.violation(f"expected 3 attempts failed for memory (max_attempts 3): {rows}")
    c.notes.append(f"attempts: {[(x[0], x[1], x[3], (x[4] or '')[:60]) for x in rows[-4:]]}")
    # the duchy is still whole: a measurement that needs little memory still works
    cid2 = c.create("hmss")
    c.wait_result(cid2)
