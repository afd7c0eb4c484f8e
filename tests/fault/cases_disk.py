"""cases_disk.py - the data directory filling up (issue 7): the aggregator's data directory
is a small tmpfs; mid-computation a ballast file takes every free byte for a few seconds,
then goes.  Expected: writes fail with ENOSPC as transient failures (stage attempts FAILED
with the error, retried after backoff), no partial blob (no .tmp. file, every committed
blob matches its hash: I2/I6), no actor wedged, and the computation completes exactly once
space returns.  Registered with faultlib.case, run by tools/fault-matrix."""

import os
import time

from faultlib import case, CaseFailed, reached


def fill(path):
    """Writes zeros to PATH until the filesystem is full; returns the bytes written."""
    n = 0
    buf = b"\0" * (1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                n += os.write(fd, buf)
            except OSError:
                break
        # the last pages too, byte-sized steps down to 4 KiB
        step = 1 << 19
        while step >= 4096:
            try:
                n += os.write(fd, buf[:step])
            except OSError:
                step //= 2
    finally:
        os.close(fd)
    return n


@case("disk-full", limit=240, budget=90,
      doc="the data directory fills up mid-stage: transient ENOSPC failures, no partial "
          "blob, recovery once space returns")
def disk_full(c):
    c.up(tmpfs={"aggregator": "64m"})
    cid = c.create("llv2")
    # fill it while a mill of the aggregator runs (its outputs hit the full disk), or, if
    # none is caught, at the next wait stage (the peers' inputs and the herald hit it)
    try:
        c.wait_worker("aggregator", cid, timeout=60, stages=("SETUP_PHASE",
                                                            "EXECUTION_PHASE_ONE"))
    except CaseFailed:
        c.wait_stage("aggregator", cid, reached(7), timeout=60,
                     what="WAIT_EXECUTION_PHASE_ONE_INPUTS")
    data = os.path.join(c.ddir("aggregator"), "data")
    ballast = os.path.join(data, "ballast")
    c.fault_begin("the aggregator's data directory full")
    n = fill(ballast)
    st = os.statvfs(data)
    c.notes.append(f"ballast {n >> 20} MiB, {st.f_bavail * st.f_frsize} bytes left")
    time.sleep(6)
    os.unlink(ballast)
    c.fault_end()
    r = c.wait_result(cid)
    errs = [(d,) + x for d in ("worker1", "worker2", "aggregator")
            for x in c.attempts(d, cid) if x[3] == "FAILED"]
    c.notes.append(f"failed attempts: {[(x[0], x[1], x[2], (x[5] or '')[:70]) for x in errs]}")
    if not errs:
        # no stage ran into the full disk: the fault did not bite (timing); say so
        logs = [l for l in open(c.logfile("aggregator"), errors="replace")
                if "No space" in l or "ENOSPC" in l or "full" in l.lower()]
        if not logs:
            raise CaseFailed("nothing ran into the full disk (no failed attempt, no log line)")
        c.notes.append(f"logged: {logs[0][-160:].strip()}")
    del r
