"""cases_audit.py - the audit log is verifiable (issue 7): after a measurement, one row of
the aggregator's hash-chained audit log is altered behind the duchy's back (the duchy
stopped, the append-only triggers dropped and restored around an UPDATE), and
`duchyctl audit verify` must say the chain is broken and name that row as the first broken
one; with the row restored the chain verifies again.  Registered with faultlib.case, run by
tools/fault-matrix."""

import sqlite3

from faultlib import case, CaseFailed


def tamper(db, seq, detail):
    """Sets audit row SEQ's detail (returns the old one), around the append-only triggers."""
    con = sqlite3.connect(db, timeout=10)
    try:
        (sql_u,), = con.execute("SELECT sql FROM sqlite_master WHERE name = 'audit_log_no_update'")
        old = con.execute("SELECT detail FROM audit_log WHERE seq = ?", (seq,)).fetchone()[0]
        con.execute("DROP TRIGGER audit_log_no_update")
        con.execute("UPDATE audit_log SET detail = ? WHERE seq = ?", (detail, seq))
        con.execute(sql_u)
        con.commit()
        return old
    finally:
        con.close()


@case("audit-tamper", limit=200, budget=60,
      doc="an audit row altered behind the duchy's back: duchyctl audit verify names it as "
          "the first broken row")
def audit_tamper(c):
    c.up()
    cid = c.create("llv2-reach-only")
    r = c.wait_result(cid)
    if r.get("state") != "SUCCEEDED":
        raise CaseFailed(f"the measurement ended {r.get('state')}")
    db = c.db("aggregator")
    rows = c.dq("aggregator", "SELECT seq FROM audit_log ORDER BY seq")
    if len(rows) < 3:
        raise CaseFailed(f"only {len(rows)} audit rows")
    seq = rows[len(rows) // 2][0]
    c.stop_duchy("aggregator")
    c.fault_begin(f"audit row {seq} of the aggregator altered")
    old = tamper(db, seq, "tampered")
    c.restart("aggregator")
    v = c.ctl("aggregator", "audit", "verify")
    if not v or v.get("ok") is not False or v.get("first_broken") != seq:
        c.violation(f"audit verify after tampering with row {seq}: {v}")
    else:
        c.notes.append(f"verify named row {seq} of {v.get('rows')}")
    c.stop_duchy("aggregator")
    tamper(db, seq, old)
    c.restart("aggregator")
    c.fault_end()
    v = c.ctl("aggregator", "audit", "verify")
    if not v or v.get("ok") is not True:
        c.violation(f"audit verify after restoring row {seq}: {v}")
