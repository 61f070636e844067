"""Variance and review answers kept per process (`ledger.kept`): a kept answer is never
served once the budget changed, whichever process or code path changed it."""
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlmodel import Session

from services.budget.app import create_app
from services.budget.config import BudgetSettings
from services.budget.ledger.kept import KeptAnswers
from services.budget.ledger.review import review_of
from services.budget.ledger.tables import Budget
from services.budget.ledger.variance import variance_of
from tests.budget.conftest import Api
from tests.budget.test_actuals import LINEAR, rows
from tests.conftest import TEST_SECRET

READS = ("/variance", "/review", "/variance.csv", "/review.csv")


@pytest.fixture(scope="module")
def other(api) -> Iterator[Api]:
    """A second process of the budget service on the same database: its own kept answers."""
    settings = BudgetSettings(database_url=api.database_url, internal_secret=TEST_SECRET,
                              solver_workers=1, calendar_url=api.calendar_url,
                              events_poll_seconds=0)
    with TestClient(create_app(settings)) as client:
        yield Api(client, api.database_url, api.calendar_url, api.campaign_id)


def answers(api: Api, budget_id: str) -> dict[str, bytes]:
    return {path: api.get(f"/budgets/{budget_id}{path}", role="finance").content
            for path in READS}


def made_now(api: Api, budget_id: str) -> tuple[bytes, bytes]:
    """The variance and review as the database holds them now, made without any kept answer."""
    engine = create_engine(api.database_url)
    try:
        with Session(engine) as session:
            budget = session.get(Budget, budget_id)
            assert budget is not None
            return (variance_of(session, budget).json(),
                    review_of(session, budget).model_dump_json(by_alias=True).encode())
    finally:
        engine.dispose()


def test_every_change_is_seen_by_every_process(api, other):
    budget, channels = api.budget_with_channels(
        [LINEAR[0], LINEAR[1], LINEAR[2]], total="3600", reserve={"amount": "600"},
        end_date="2027-03-31", rules={"alert_percent": "20"})
    path = f"/budgets/{budget['id']}"
    api.approved_plan(budget["id"])
    draw = api.ok(api.post(f"{path}/reserve/draws", {"amount": "100", "reason": "x",
                                                     "channel_id": channels["beta"]["id"],
                                                     "period": "2027-01"}), 201)
    version = lambda: api.ok(api.get(path))["version"]  # noqa: E731
    changes = [
        lambda: api.ok(api.post(f"{path}/actuals", {"rows": rows(channels, {
            "alpha": [("300", "600")], "beta": [("430", "900")], "trial": [("100", "300")]})},
            role="finance")),
        # A restatement: the same keys, new figures.
        lambda: api.ok(api.post(f"{path}/actuals", {"rows": rows(channels, {
            "alpha": [("310", "600")]})}, role="finance")),
        lambda: api.ok(api.post(f"{path}/reserve/draws/{draw['id']}/reversal",
                                {"reason": "not needed"}), 201),
        lambda: api.ok(api.patch(f"{path}/channels/{channels['beta']['id']}", {"name": "beta 2"},
                                 headers={"If-Match": f'"{channels["beta"]["version"]}"'})),
        lambda: api.ok(api.post(f"{path}/review/apply", {"actions": [
            {"channel_id": channels["trial"]["id"], "action": "admit"}]})),
        lambda: api.approved_plan(budget["id"]),
        lambda: api.ok(api.patch(path, {"rules": {"alert_percent": "5"}},
                                 headers={"If-Match": f'"{version()}"'})),
    ]
    seen = [answers(api, budget["id"])]
    assert answers(other, budget["id"]) == seen[0]   # both processes now keep it
    for change in changes:
        change()
        variance, review = made_now(api, budget["id"])
        # The process that did not make the change, first, then the one that did.
        for process in (other, api):
            now = answers(process, budget["id"])
            assert (now["/variance"], now["/review"]) == (variance, review)
            assert now != seen[-1]
        seen.append(now)


def test_a_change_made_outside_the_service_is_seen(api):
    """The database's triggers move the revision, not the service's code: a row written by
    any other program is seen at the next read."""
    budget, channels = api.budget_with_channels([LINEAR[0]], total="1000",
                                                reserve={"amount": "0"}, end_date="2027-01-31")
    api.approved_plan(budget["id"])
    api.ok(api.post(f"/budgets/{budget['id']}/actuals", {"rows": rows(channels, {
        "alpha": [("300", "600")]})}, role="finance"))
    before = answers(api, budget["id"])
    engine = create_engine(api.database_url)
    statements = [
        "UPDATE actual SET spend_minor = spend_minor + 1 WHERE budget_id = :budget",
        "INSERT INTO actual (budget_id, channel_id, period, campaign_id, spend_minor, "
        "return_minor, updated_by, updated_at) VALUES (:budget, :channel, '2027-01', 'c-x', 5, "
        "7, 'script', :now)",
        "DELETE FROM actual WHERE budget_id = :budget AND campaign_id = 'c-x'",
        "UPDATE channel SET name = 'renamed' WHERE budget_id = :budget",
        "UPDATE plan_line SET amount_minor = amount_minor - 1 WHERE plan_id IN "
        "(SELECT id FROM plan WHERE budget_id = :budget)",
    ]
    try:
        for statement in statements:
            with engine.begin() as connection:
                connection.execute(text(statement), {"budget": budget["id"],
                                                     "channel": channels["alpha"]["id"],
                                                     "now": datetime.now(UTC)})
            now = answers(api, budget["id"])
            assert now != before, statement
            assert (now["/variance"], now["/review"]) == made_now(api, budget["id"])
            before = now
    finally:
        engine.dispose()


def test_a_transaction_moves_the_revision(api):
    budget, channels = api.budget_with_channels([LINEAR[0]], total="1000",
                                                reserve={"amount": "0"}, end_date="2027-03-31")
    engine = create_engine(api.database_url)
    revision = text("SELECT revision FROM budget WHERE id = :budget")
    try:
        with engine.connect() as connection:
            first = connection.execute(revision, {"budget": budget["id"]}).scalar_one()
        api.ok(api.post(f"/budgets/{budget['id']}/actuals", {"rows": rows(channels, {
            "alpha": [("1", "2"), ("3", "4"), ("5", "6")]})}, role="finance"))
        with engine.connect() as connection:
            moved = connection.execute(revision, {"budget": budget["id"]}).scalar_one() - first
    finally:
        engine.dispose()
    # PostgreSQL moves it once per transaction and budget (each row would add a version of
    # the budget row); SQLite once per row.
    assert moved == (1 if api.database_url.startswith("postgresql") else 3)


def test_a_change_after_a_rolled_back_savepoint_moves_the_revision(api):
    """PostgreSQL notes the budget it moved in the transaction; a savepoint rolled back takes
    the move and the note away together, so the next row moves it again."""
    budget, channels = api.budget_with_channels([LINEAR[0]], total="1000",
                                                reserve={"amount": "0"}, end_date="2027-03-31")
    engine = create_engine(api.database_url)
    revision = text("SELECT revision FROM budget WHERE id = :budget")
    insert = text("INSERT INTO actual (budget_id, channel_id, period, campaign_id, spend_minor, "
                  "return_minor, updated_by, updated_at) VALUES (:budget, :channel, :period, "
                  "'', 1, 2, 'script', :now)")
    values = {"budget": budget["id"], "channel": channels["alpha"]["id"], "now": datetime.now(UTC)}
    try:
        with engine.connect() as connection:
            first = connection.execute(revision, values).scalar_one()
        with engine.begin() as connection:
            savepoint = connection.begin_nested()
            connection.execute(insert, values | {"period": "2027-01"})
            savepoint.rollback()
            connection.execute(insert, values | {"period": "2027-02"})
        with engine.connect() as connection:
            assert connection.execute(revision, values).scalar_one() == first + 1
    finally:
        engine.dispose()


def test_kept_answers_are_found_only_in_their_state_and_within_capacity():
    made = []

    def make(text_: bytes):
        def answer() -> bytes:
            made.append(text_)
            return text_
        return answer

    kept = KeptAnswers(capacity=10)
    one = Budget(id="b1", revision=1, currency="USD", rules={})
    assert kept.answer("variance", one, make(b"12345")).body == b"12345"
    assert kept.answer("variance", one, make(b"other")).body == b"12345"     # kept
    one.revision = 2
    assert kept.answer("variance", one, make(b"54321")).body == b"54321"     # a new state
    one.rules = {"alert_percent": "5"}
    assert kept.answer("variance", one, make(b"rules")).body == b"rules"     # its own fields too
    two = Budget(id="b2", revision=1, currency="USD", rules={})
    assert kept.answer("variance", two, make(b"678901")).body == b"678901"   # 5 + 6 > 10: b1 goes
    assert kept.answer("variance", one, make(b"again")).body == b"again"     # b1 was let go
    one.revision = 3
    assert kept.answer("variance", one, make(b"x" * 11)).body == b"x" * 11   # too large to keep
    assert kept.answer("variance", one, make(b"y")).body == b"y"
    assert made == [b"12345", b"54321", b"rules", b"678901", b"again", b"x" * 11, b"y"]
