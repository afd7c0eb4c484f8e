"""cases_input.py - bad input and out-of-order input (issue 7): an EDP's sketch with a
point not on the curve, with the wrong ciphertext count, an HMSS share of the wrong
length, a seed with a bad signature (tools/edp --corrupt, through tools/federation
--edp-corrupt), a protocol config no duchy supports (duchy-mc --testing-noise-mechanism);
each must end its computation FAILED with a clear permanent reason recorded locally and at
the Kingdom (I1), without a crash, while another computation running at the same time is
not disturbed.  (A send for a stage the receiver has not reached yet is in cases_peer.py:
in LLv2 no real sender can be ahead of its receiver, so fault-peer sends it.)
Each case is registered with faultlib.case and run by tools/fault-matrix."""

from faultlib import case, CaseFailed, DUCHIES


def actors_unchanged(c, before):
    """No actor of any duchy was restarted (a crash would have been)."""
    for d in DUCHIES:
        now_ = {a["name"]: (a["pid"], a.get("restarts", 0))
                for a in c.supervisor(d).get("actors", [])}
        if now_ != before[d]:
            c.violation(f"{d}: actors restarted: {before[d]} -> {now_}")


def actor_snapshot(c):
    return {d: {a["name"]: (a["pid"], a.get("restarts", 0))
                for a in c.supervisor(d).get("actors", [])} for d in DUCHIES}


def corrupt_case(c, mode, protocol, other, expect):
    c.up(extra=["--edp-corrupt", f"edp1:{mode}"])
    before = actor_snapshot(c)
    c.fault_begin(f"edp1 fulfils its first {protocol} requisition with {mode}")
    bad = c.create(protocol, expect=expect)
    ok = c.create(other)  # another computation at the same time, undisturbed
    c.wait_result(bad)
    c.fault_end()
    c.wait_result(ok)
    # the corruption was really sent
    hit = [l for l in open(f"{c.dir}/logs/edp1.log", errors="replace") if "CORRUPTED" in l]
    if not hit:
        raise CaseFailed("edp1 logged no CORRUPTED fulfilment: the fault did not happen")
    if expect == "fail":
        # the failing stage ran once: a permanent error is not retried
        for d in DUCHIES:
            rows = [x for x in c.attempts(d, bad) if x[3] == "FAILED"]
            if len(rows) > 1:
                c.violation(f"{d}: a permanent error was retried: {rows}")
    # after the corrupt limit, the same EDP's next fulfilment is good
    again = c.create(protocol)
    c.wait_result(again)
    actors_unchanged(c, before)


@case("edp-not-on-curve", limit=200, budget=60,
      doc="an EDP sketch with a point not on P-256: FAILED (invalid point), others fine")
def edp_not_on_curve(c):
    corrupt_case(c, "not-on-curve", "llv2", "hmss", "fail")


@case("edp-wrong-count", limit=200, budget=60,
      doc="an EDP sketch with a ciphertext missing: refused at upload (INVALID_ARGUMENT), "
          "the EDP's good retry SUCCEEDS")
def edp_wrong_count(c):
    corrupt_case(c, "wrong-count", "llv2-reach-only", "hmss", "succeed")
    refused = [l for l in open(f"{c.dir}/logs/edp1.log", errors="replace")
               if "INVALID_ARGUMENT" in l or "not whole" in l]
    if not refused:
        c.violation("edp1's corrupt upload was not refused with INVALID_ARGUMENT")


@case("edp-bad-share", limit=200, budget=60,
      doc="an HMSS share of the wrong length: FAILED (share_inconsistent), others fine")
def edp_bad_share(c):
    corrupt_case(c, "hmss-bad-share", "hmss", "llv2-reach-only", "fail")


@case("edp-bad-signature", limit=200, budget=60,
      doc="an HMSS seed with a bad signature: FAILED (seed_invalid), others fine")
def edp_bad_signature(c):
    corrupt_case(c, "bad-signature", "hmss-reach-only", "llv2-reach-only", "fail")


@case("unknown-protocol-config", limit=200, budget=60,
      doc="a protocol config no duchy supports (noise mechanism): FAILED with the reason, "
          "others fine")
def unknown_protocol_config(c):
    c.up()
    before = actor_snapshot(c)
    c.fault_begin("a measurement with an unsupported noise mechanism")
    bad = c.create("hmss", expect="fail", extra=["--testing-noise-mechanism", "5"])
    ok = c.create("llv2-reach-only")
    r = c.wait_result(bad)
    c.fault_end()
    c.wait_result(ok)
    if r.get("state") == "FAILED":
        m = c.kq("SELECT coalesce(failure_message, '') FROM measurements")
        if not any("not supported" in x for (x,) in m):
            c.violation(f"the Kingdom's reason does not say what is unsupported: {m}")
    actors_unchanged(c, before)
