"""The event feed: every change has its event, written in its transaction, served in commit
order with the cursor contract `shared/events.py` relies on; retention answers 410."""
import random
import threading
import time
from datetime import timedelta

from sqlmodel import Session

from services.calendar.models import EventSequence, utcnow
from services.calendar.outbox import NewEvent, prune_events, publish, read_events
from shared.db import write_engine


def events(api, campaign: dict, after: str | None = None, limit: int = 500) -> list[dict]:
    params = {"campaign_id": campaign["id"], "limit": limit} | ({"after": after} if after else {})
    return api.ok(api.get("/events", params=params, role="viewer"))["items"]


def test_a_template_campaign_reports_itself_its_phases_and_milestones(api):
    campaign = api.from_template("standard", launch="2027-03-15")
    items = events(api, campaign)
    # 1 campaign, the standard template's 4 phases and 6 steps + the contingency window.
    assert [i["type"] for i in items] == (["campaign.created"] + ["phase.changed"] * 4
                                          + ["milestone.created"] * 7)
    assert items[0]["data"]["status"] == "draft" and items[0]["campaign_id"] == campaign["id"]
    assert [(i["data"]["kind"], i["data"]["change"], i["data"]["from"], i["data"]["to"])
            for i in items[1:5]] == [
        ("warmup", "created", None, {"start_date": "2027-03-08", "end_date": "2027-03-14"}),
        ("burst", "created", None, {"start_date": "2027-03-15", "end_date": "2027-03-28"}),
        ("sustain", "created", None, {"start_date": "2027-03-29", "end_date": "2027-04-18"}),
        ("wrapup", "created", None, {"start_date": "2027-04-19", "end_date": "2027-04-25"})]
    ids = [int(i["id"]) for i in items]
    assert ids == list(range(ids[0], ids[0] + 12))   # one transaction: consecutive positions


def test_status_changes_moves_and_deletes_report_what_changed(api):
    campaign = api.campaign()
    path = f"/campaigns/{campaign['id']}"
    api.ok(api.post(path + "/status", {"status": "planned"},
                    headers={"If-Match": api.get(path).headers["etag"]}))
    kickoff = api.milestone(campaign, kind="kickoff", name="Kickoff", due_date="2026-12-17")
    launch = api.milestone(campaign, kind="launch", name="Launch", due_date="2026-12-18",
                           depends_on=[{"milestone_id": kickoff["id"], "lag_days": 1}])
    api.ok(api.move(campaign, kickoff["id"], "2026-12-22"))
    mpath = f"{path}/milestones/{kickoff['id']}"
    assert api.call("DELETE", mpath, headers={"If-Match": api.get(mpath).headers["etag"]}
                    ).status_code == 204
    items = events(api, campaign)
    assert [(i["type"], i["data"]) for i in items[1:2]] == [
        ("campaign.status_changed", {"from": "draft", "to": "planned"})]
    moved = [i["data"] for i in items if i["type"] == "milestone.moved"]
    # Launch follows Tue 22nd by 1 working day: Wed 23rd.
    assert moved == [
        {"milestone_id": kickoff["id"], "kind": "kickoff", "from_date": "2026-12-17",
         "to_date": "2026-12-22"},
        {"milestone_id": launch["id"], "kind": "launch", "from_date": "2026-12-18",
         "to_date": "2026-12-23"}]
    assert items[-1]["type"] == "milestone.deleted"
    assert items[-1]["data"] == {"milestone_id": kickoff["id"], "kind": "kickoff",
                                 "due_date": "2026-12-22"}
    assert api.ok(api.get(f"{path}/milestones/{launch['id']}"))["depends_on"] == []


def test_a_refused_change_writes_no_event(api):
    campaign = api.campaign()
    before = events(api, campaign)
    path = f"/campaigns/{campaign['id']}"
    response = api.post(path + "/status", {"status": "live"},
                        headers={"If-Match": api.get(path).headers["etag"]})
    assert response.status_code == 409
    assert events(api, campaign) == before


def test_an_events_id_is_the_cursor_and_next_cursor_marks_a_full_page(api):
    campaign = api.from_template("flash_sale", launch="2027-03-15")
    everything = events(api, campaign)
    assert len(everything) == 11   # campaign, 3 phases (no sustain), 6 steps + contingency
    pages, after = [], None
    while True:
        params = {"campaign_id": campaign["id"], "limit": 4} | ({"after": after} if after else {})
        page = api.ok(api.get("/events", params=params))
        pages.append([i["id"] for i in page["items"]])
        if page["next_cursor"] is None:
            break
        assert page["next_cursor"] == page["items"][-1]["id"]
        after = page["next_cursor"]
    assert [len(p) for p in pages] == [4, 4, 3]
    assert sum(pages, []) == [i["id"] for i in everything]
    # A consumer that stored the last id it applied asks after it, and gets nothing new yet.
    assert events(api, campaign, after=everything[-1]["id"]) == []


def test_a_cursor_that_is_not_an_event_id_is_a_422(api):
    for after in ("abc", "-1", "1.5", "9" * 19):
        response = api.get("/events", params={"after": after})
        assert response.status_code == 422, after
        assert response.headers["content-type"] == "application/problem+json"


def test_positions_follow_commit_order_under_concurrent_writers(api):
    """Writers hold their transaction open for a while after taking positions (some roll
    back); a reader polling all along must see every position once, in order, never one
    appearing behind another it already read."""
    engine = api.client.app.state.engine
    with Session(engine) as session:
        tail = session.get_one(EventSequence, 1).last
    committed: list[int] = []
    lock = threading.Lock()
    done = threading.Event()

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for n in range(12):
            with Session(write_engine(engine)) as session:
                publish(session, [NewEvent("test.write", None, {"seed": seed, "n": n})])
                session.flush()
                time.sleep(rng.uniform(0, 0.004))
                if rng.random() < 0.2:
                    session.rollback()
                    continue
                session.commit()
                with lock:
                    committed.append(seed)

    seen: list[int] = []

    def reader() -> None:
        after = str(tail)
        while True:
            finished = done.is_set()
            with Session(engine) as session:
                page = read_events(session=session, after=after, limit=500, campaign_id=None)
            for item in page.items:
                assert not seen or int(item.id) == seen[-1] + 1, (seen[-5:], item.id)
                seen.append(int(item.id))
            if page.items:
                after = page.items[-1].id
            elif finished:
                return

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    polling = threading.Thread(target=reader)
    polling.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    polling.join()
    assert seen == list(range(tail + 1, tail + 1 + len(committed)))
    with Session(engine) as session:
        again = read_events(session=session, after=str(tail), limit=500, campaign_id=None)
    assert [int(i.id) for i in again.items] == seen


def test_retention_prunes_old_events_and_an_older_cursor_is_a_410(api):
    # Last in this module: it prunes every event made so far.
    campaign = api.campaign()
    first = events(api, campaign)[0]["id"]
    engine = api.client.app.state.engine
    with Session(write_engine(engine)) as session:
        assert prune_events(session=session, before=utcnow() + timedelta(seconds=1)) > 0
    newer = api.campaign()
    response = api.get("/events", params={"after": str(int(first) - 1)})
    assert response.status_code == 410
    assert response.headers["content-type"] == "application/problem+json"
    assert "Start over" in response.json()["detail"]
    # The last pruned event is still a valid cursor: nothing after it was lost.
    kept = api.ok(api.get("/events", params={"after": response.json()["pruned_through"]}))
    assert [i["campaign_id"] for i in kept["items"]] == [newer["id"]]
    assert api.ok(api.get("/events"))["items"] == kept["items"]
    ahead = api.get("/events", params={"after": str(10**12)})
    assert ahead.status_code == 410 and "ahead of this feed" in ahead.json()["detail"]
