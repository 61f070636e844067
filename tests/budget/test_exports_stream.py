"""CSV exports are streamed (issue 17): rows come from the database a chunk at a time and go
out as they are written, so memory does not grow with the file; the bytes are the same."""
from sqlalchemy import create_engine, event
from sqlmodel import Session

from services.budget.ledger import exports
from services.budget.ledger.tables import AuditEntry
from tests.budget.conftest import read_csv

LINEAR = {"kind": "search", "response": {"type": "linear", "roi": "2"}}


def test_audit_export_reads_its_rows_a_chunk_at_a_time(api, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK_ROWS", 2)
    # One audit entry for the budget and one per channel: 7 rows, more than 3 chunks of 2.
    budget, _ = api.budget_with_channels([LINEAR | {"name": f"c{i}"} for i in range(6)])
    answered = api.get(f"/budgets/{budget['id']}/audit.csv", role="finance")
    assert len(read_csv(answered)) == 7

    engine = create_engine(api.database_url)
    loaded = []

    def count(entry, _context):
        loaded.append(entry.id)

    event.listen(AuditEntry, "load", count)
    try:
        with Session(engine) as session:
            pieces = exports.audit_csv(session=session, budget_id=budget["id"])
            first = next(pieces)
            # The first piece (BOM, header, 2 rows) is out after at most two chunks were read.
            assert first.count("\r\n") == 3 and len(loaded) <= 4
            rest = "".join(pieces)
    finally:
        event.remove(AuditEntry, "load", count)
        engine.dispose()
    assert len(loaded) == 7
    # Through HTTP, the same bytes as the pieces joined.
    assert answered.content.decode("utf-8") == first + rest


def test_text_sorts_by_code_point_on_every_backend(api):
    # PostgreSQL's usual collations put "a" before "B" and skip "_"; the file sorts as
    # Python does (code points: upper case, then "_", then lower case, then accents).
    names = ["b", "B", "a", "Z", "é", "_x"]
    budget, _ = api.budget_with_channels([LINEAR | {"name": name, "max": "1000"}
                                          for name in names])
    api.approved_plan(budget["id"])
    rows = read_csv(api.get(f"/budgets/{budget['id']}/plans/1.csv", role="finance"))
    # Six monthly periods per channel (January to June), channels in code-point order.
    assert [r["channel"] for r in rows] == [n for n in sorted(names) for _ in range(6)]
    assert [r["period"] for r in rows[:6]] == [f"2027-0{m}" for m in range(1, 7)]
