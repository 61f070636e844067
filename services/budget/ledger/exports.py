"""CSV exports for finance: a header row, a fixed column order, exact decimal strings.

Made for spreadsheets as much as for programs:
- a UTF-8 byte order mark first, without which LibreOffice's and Excel's default import read
  UTF-8 as a legacy code page (`Télé — Prime` becomes `TÃ©lÃ© â€” Prime`);
- a text cell that a spreadsheet would run as a formula (starting with = + - @, a tab or a
  carriage return) is written with an apostrophe in front, as OWASP advises against CSV
  injection; numbers are written as numbers, so a negative amount stays a number.

Each export checks what it is asked for at once (a missing budget is a 404 before any byte is
sent) and returns the text in pieces: rows are read from the database `CHUNK_ROWS` at a time
(`yield_per`: a server-side cursor on PostgreSQL) in the order the file has, sorted by the
database, so an export of 100,000 rows holds no more in memory than one of 1,000.
"""
import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from services.budget.ledger import review, variance
from services.budget.ledger.kept import KeptAnswers, ledger_state
from services.budget.ledger.loaders import get_budget, get_plan
from services.budget.ledger.tables import (
    Actual,
    AuditEntry,
    Budget,
    Channel,
    PlanLine,
    ReserveEntry,
)
from shared.kept import Kept
from shared.money import from_minor

BOM = "\ufeff"
CHUNK_ROWS = 1000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

PLAN_COLUMNS = ("budget_id", "plan", "channel_id", "channel", "period", "amount",
                "expected_return", "currency")
ACTUALS_COLUMNS = ("budget_id", "channel_id", "channel", "period", "campaign_id", "spend",
                   "return", "currency")
VARIANCE_COLUMNS = ("budget_id", "plan", "campaign_id", "channel_id", "channel", "period",
                    "planned", "spend",
                    "variance", "variance_percent", "return", "roi", "currency")
RESERVE_COLUMNS = ("budget_id", "entry_id", "kind", "amount", "currency", "channel_id",
                   "campaign_id", "plan", "period", "reason", "reverses_id", "author",
                   "author_name", "confirmed_by", "confirmed_by_name", "request_id",
                   "created_at")
AUDIT_COLUMNS = ("budget_id", "entry", "at", "principal", "principal_name", "role",
                 "request_id", "action", "target", "changes")
REVIEW_COLUMNS = ("budget_id", "channel_id", "channel", "state", "recommendation", "reason",
                  "spend", "return", "roi", "ratio_to_average", "periods_below_exit",
                  "currency")

Cell = str | int | Decimal | None


def _cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _cells(rows: Iterable[Sequence[Cell]]) -> Iterator[list[str]]:
    """Rows of values as the file writes them."""
    return ([_cell(value) for value in row] for row in rows)


def _csv(columns: Sequence[str], rows: Iterable[Sequence[str | None]]) -> Iterator[str]:
    """The file's text from rows already written (`_cells`; None is written empty): BOM and
    header first, then `CHUNK_ROWS` rows per piece."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")   # RFC 4180 line ends
    writer.writerow(columns)
    for count, row in enumerate(rows, 1):
        writer.writerow(row)
        if count % CHUNK_ROWS == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _code_points(session: Session, column: Any) -> ColumnElement[Any]:
    """The column ordered as Python orders text (by code point), as the files always were:
    SQLite compares bytes already; PostgreSQL's database collation may not, its "C" does."""
    return column.collate("C") if session.get_bind().dialect.name == "postgresql" else column


def _tag(*parts: Any) -> str:
    return '"' + hashlib.sha256(repr(parts).encode()).hexdigest()[:32] + '"'


def ledger_etag(*, session: Session, budget_id: str, read: str, plan_number: int | None = None,
                campaign_id: str | None = None) -> str:
    """The ETag of a streamed export of the ledger (a plan's lines, the reserve's entries,
    actuals), read before its rows: of the budget's state (`kept.ledger_state`: the revision
    its triggers move with every such row, and the fields the file shows), the read and its
    parameters. The same state writes the same bytes; a state whose file came out the same
    gets a new ETag all the same (one 200 where a hash of the bytes would have said 304), so
    an export that streams need not be read whole first."""
    budget = get_budget(session, budget_id)
    if plan_number is not None:
        get_plan(session, budget.id, plan_number)   # a 404 before any validator matches
    return _tag(read, budget.id, ledger_state(budget), plan_number, campaign_id)


def audit_etag(*, session: Session, budget_id: str) -> str:
    """The ETag of the audit log's export: entries are only ever added (the database refuses
    UPDATE and DELETE), so how many there are and the newest id name the log (ids are taken
    before their transactions commit, so the count tells a late commit of a lower id)."""
    budget = get_budget(session, budget_id)
    count, newest = session.exec(select(func.count(), func.max(AuditEntry.id))
                                 .where(AuditEntry.budget_id == budget.id)).one()
    return _tag("audit.csv", budget.id, count, newest)


def _streamed(session: Session, statement: Any) -> Iterator[Any]:
    return iter(session.exec(statement.execution_options(yield_per=CHUNK_ROWS)))


def plan_csv(*, session: Session, budget_id: str, number: int) -> Iterator[str]:
    """One row per channel and period of a plan version, as the optimizer allocated it."""
    budget = get_budget(session, budget_id)
    plan = get_plan(session, budget.id, number)
    # Period ids of one budget sort as their dates do ("2026-W53" < "2027-W01", "2027-Q1").
    lines = _streamed(session, select_columns(
        col(PlanLine.channel_id), col(Channel.name), col(PlanLine.period),
        col(PlanLine.amount_minor), col(PlanLine.expected_return_minor))
                      .join(Channel, col(Channel.id) == col(PlanLine.channel_id))
                      .where(col(PlanLine.plan_id) == plan.id)
                      .order_by(_code_points(session, Channel.name),
                                _code_points(session, PlanLine.period)))
    money = lambda units: from_minor(units, budget.currency)  # noqa: E731
    return _csv(PLAN_COLUMNS, _cells((budget.id, plan.number, channel_id, name, period, money(amount),
                                money(expected), budget.currency)
                               for channel_id, name, period, amount, expected in lines))


def actuals_csv(*, session: Session, budget_id: str,
                campaign_id: str | None = None) -> Iterator[str]:
    """One row per channel, period and campaign with reported actuals (only the campaign's
    with `campaign_id`)."""
    budget = get_budget(session, budget_id)
    # SQLAlchemy's own select: SQLModel's takes at most four columns.
    statement = (select_columns(col(Actual.channel_id), col(Channel.name), col(Actual.period),
                                col(Actual.campaign_id), col(Actual.spend_minor),
                                col(Actual.return_minor))
                 .join(Channel, col(Channel.id) == col(Actual.channel_id))
                 .where(col(Actual.budget_id) == budget.id)
                 .order_by(_code_points(session, Actual.period), _code_points(session, Channel.name),
                           _code_points(session, Actual.campaign_id)))
    if campaign_id is not None:
        statement = statement.where(col(Actual.campaign_id) == campaign_id)
    money = lambda units: from_minor(units, budget.currency)  # noqa: E731
    return _csv(ACTUALS_COLUMNS, _cells((budget.id, channel_id, name, period, campaign or None,
                                   money(spend), money(earned), budget.currency)
                                  for channel_id, name, period, campaign, spend, earned
                                  in _streamed(session, statement)))


def variance_csv(*, session: Session, budget_id: str, campaign_id: str | None = None,
                 kept: KeptAnswers) -> Kept:
    """The variance rows (plan with its draws against actuals, or a campaign's funding against
    its actuals), one per channel and period; the budget's whole variance is kept as the
    variance's JSON is (`variance.read_variance_json`). Written whole, not streamed: it is
    made from the variance in memory anyway, and its ETag is a hash of its bytes."""
    budget = get_budget(session, budget_id)
    if campaign_id is not None:
        return Kept.of(_joined(_variance_csv(
            budget.id, variance.variance_of(session, budget, campaign_id))))
    return kept.answer("variance.csv", budget, lambda: _joined(
        _variance_csv(budget.id, variance.variance_of(session, budget))))


def _joined(lines: Iterator[str]) -> bytes:
    return "".join(lines).encode()


def _variance_csv(budget_id: str, report: variance.VarianceReport) -> Iterator[str]:
    head = [_cell(value) for value in (budget_id, report.plan, report.campaign_id)]
    tail = _cell(report.currency)
    # The figures are the API's decimal texts already (None, a null ratio, is written empty),
    # written as they are: a negative variance stays a number. Names and ids go through `_cell`.
    return _csv(VARIANCE_COLUMNS, ([*head, _cell(channel_id), _cell(channel), _cell(period),
                                    *figures, tail]
                                   for channel_id, channel, period, *figures in report.rows))


def reserve_csv(*, session: Session, budget_id: str) -> Iterator[str]:
    """The reserve's ledger, oldest entry first: draws positive, reversals negative."""
    budget = get_budget(session, budget_id)
    entries = _streamed(session, select(ReserveEntry).where(ReserveEntry.budget_id == budget.id)
                        .order_by(ReserveEntry.id))
    return _csv(RESERVE_COLUMNS, _cells((
        budget.id, e.id, e.kind, from_minor(e.amount_minor, budget.currency), budget.currency,
        e.channel_id, e.campaign_id, e.plan_number, e.period, e.reason, e.reverses_id, e.author,
        e.author_name, e.confirmed_by, e.confirmed_by_name, e.request_id,
        e.created_at.isoformat()) for e in entries))


def audit_csv(*, session: Session, budget_id: str) -> Iterator[str]:
    """The budget's audit log, oldest first; each entry's changes as one JSON cell."""
    budget = get_budget(session, budget_id)
    entries = _streamed(session, select(AuditEntry).where(AuditEntry.budget_id == budget.id)
                        .order_by(col(AuditEntry.id)))
    return _csv(AUDIT_COLUMNS, _cells((
        budget.id, e.id, e.at.isoformat(), e.principal, e.principal_name, e.role, e.request_id,
        e.action, e.target, json.dumps(e.changes, ensure_ascii=False, sort_keys=True))
        for e in entries))


def review_csv(*, session: Session, budget_id: str, kept: KeptAnswers) -> Kept:
    """The playbook's recommendation per channel, with the figures behind it; kept as the
    review's JSON is (`review.read_review_json`)."""
    budget = get_budget(session, budget_id)
    return kept.answer("review.csv", budget,
                       lambda: _joined(_review_csv(budget, review.review_of(session, budget))))


def _review_csv(budget: Budget, report: review.ReviewPublic) -> Iterator[str]:
    return _csv(REVIEW_COLUMNS, _cells([(
        budget.id, c.channel_id, c.channel, c.state, c.recommendation, c.reason, c.spend,
        c.return_, c.roi, c.ratio_to_average, " ".join(c.periods_below_exit), budget.currency)
        for c in report.channels]))
