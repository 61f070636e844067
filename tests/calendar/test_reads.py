"""The everyday reads over many campaigns take a fixed number of queries, however many
campaigns they show (issue 17: a department-year has hundreds in a quarter)."""
import uuid
from contextlib import contextmanager

from sqlalchemy import event


@contextmanager
def counted(api):
    """The SQL statements the calendar service runs inside the block."""
    engine = api.client.app.state.engine
    statements: list[str] = []

    def count(_connection, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_calendar_range_and_feed_take_the_same_queries_for_more_campaigns(api):
    owner = f"reads-{uuid.uuid4().hex[:6]}"
    feed = api.ok(api.post("/feed-tokens", {"label": "reads", "filters": {"owner": owner}}), 201)
    range_ = {"from": "2027-08-01", "to": "2027-10-31", "owner": owner, "limit": 500}

    def read() -> tuple[int, int, dict, bytes]:
        with counted(api) as calendar:
            view = api.ok(api.get("/calendar", params=range_))
        with counted(api) as feeds:
            answer = api.get(feed["path"].removeprefix("/api/v1/calendar"), role="viewer")
        assert answer.status_code == 200
        return len(calendar), len(feeds), view, answer.content

    # Template campaigns: phases, milestones with dependencies, review gates.
    launches = ["2027-09-08", "2027-09-15", "2027-09-22", "2027-09-29"]
    api.from_template("standard", launch=launches[0], owner=owner)
    few_calendar, few_feed, view, body = read()
    assert len(view["items"]) == 1 and body.count(b"(campaign)") == 1
    for launch in launches[1:]:
        api.from_template("standard", launch=launch, owner=owner)
    calendar, feed_queries, view, body = read()
    assert len(view["items"]) == 4 and body.count(b"(campaign)") == 4
    assert all(entry["phases"] and entry["milestones"] for entry in view["items"])
    assert (calendar, feed_queries) == (few_calendar, few_feed)
