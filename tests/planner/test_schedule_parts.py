"""A stored schedule is also kept split by campaign (`schedule_campaign`), which the campaign
overview reads instead of the whole result: made with every schedule and re-plan, and by the
migration for the schedules stored before it, on both backends."""
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import command
from sqlmodel import Session, col, create_engine, select

from services.planner.app import MIGRATIONS
from services.planner.models import Schedule, ScheduleCampaign
from shared import migrations
from shared.workdays import next_working_day
from tests.planner.conftest import call, ok, team

START = next_working_day(date.today() + timedelta(days=7), "US")


def parts_of(url: str, schedule_id: str) -> dict[str, tuple[list, list]]:
    engine = create_engine(url)
    with Session(engine) as session:
        rows = session.exec(select(ScheduleCampaign)
                            .where(ScheduleCampaign.schedule_id == schedule_id)).all()
        answer = {r.campaign_id: ([a["task"] for a in r.assignments], [x["task"] for x in r.late])
                  for r in rows}
    engine.dispose()
    return answer


def task(task_id: str, campaign_id: str | None, deadline: date, effort: str = "8") -> dict:
    return {"id": task_id, "name": task_id, "campaign_id": campaign_id, "skill": "design",
            "effort_hours": effort, "deadline": deadline.isoformat(), "priority": 1}


def test_each_schedule_and_its_replan_are_kept_split_by_campaign(composed, peers, backend_url):
    team(composed)
    # Design has 16 h a day (conftest's team): the 40 h task due on the first day ends on
    # the third working day at the earliest, late; the others have a month. "loose" has no
    # campaign, so it is in no part.
    for body in (task("a-1", "cmp_a", START + timedelta(days=30)),
                 task("b-1", "cmp_b", START, effort="40"),
                 task("a-2", "cmp_a", START + timedelta(days=30)),
                 task("loose", None, START + timedelta(days=30))):
        ok(call(composed, "POST", "/tasks", body), 201)
    schedule = ok(call(composed, "POST", "/schedules", {
        "start": START.isoformat(), "horizon_days": 60}), 201)
    late = [x["task"] for x in schedule["schedule"]["late"]]
    assert late == ["b-1"]
    order = [a["task"] for a in schedule["schedule"]["assignments"]]
    # Each part lists its campaign's tasks in the result's order.
    assert parts_of(backend_url, schedule["id"]) == {
        "cmp_a": ([t for t in order if t.startswith("a-")], []),
        "cmp_b": (["b-1"], ["b-1"])}
    replan = ok(call(composed, "POST", f"/schedules/{schedule['id']}/replan",
                     {"as_of": START.isoformat()}), 201)
    order = [a["task"] for a in replan["schedule"]["assignments"]]
    assert parts_of(backend_url, replan["id"]) == {
        "cmp_a": ([t for t in order if t.startswith("a-")], []),
        "cmp_b": (["b-1"], ["b-1"])}


def test_the_migration_splits_the_schedules_stored_before_it(database_url):
    config = migrations.alembic_config(MIGRATIONS, database_url)
    command.upgrade(config, "0007")
    engine = create_engine(database_url)
    day = {"date": "2027-01-04", "hours": "8"}

    def assignment(task_id: str) -> dict:
        return {"task": task_id, "resource": "res_1", "start": "2027-01-04",
                "finish": "2027-01-04", "days": [day]}

    def late(task_id: str) -> dict:
        return {"task": task_id, "deadline": "2027-01-01", "finish": "2027-01-04",
                "days_late": 1, "reason": "r", "resource": "res_1", "saturated_days": [],
                "chain": []}

    # The tables as revision 0007 has them, typed where a value needs converting.
    tasks = sa.table("task", sa.column("id"), sa.column("campaign_id"), sa.column("name"),
                     sa.column("skill"), sa.column("effort"), sa.column("priority"),
                     sa.column("predecessors", sa.JSON), sa.column("created_at", sa.DateTime))
    schedules = sa.table("schedule", sa.column("id"), sa.column("start_date", sa.Date),
                         sa.column("horizon_days"), sa.column("campaign_ids", sa.JSON),
                         sa.column("result", sa.JSON), sa.column("created_by"),
                         sa.column("created_at", sa.DateTime))
    now = datetime(2027, 1, 1, tzinfo=UTC)
    # "gone" was deleted after its schedule was made: no overview can ask for it.
    result = {"assignments": [assignment(t) for t in ("t3", "t2", "t4", "gone", "t1")],
              "late": [late("t2"), late("gone")]}
    with engine.begin() as connection:
        connection.execute(tasks.insert(), [
            {"id": t, "campaign_id": c, "name": t, "skill": "design", "effort": 800,
             "priority": 1, "predecessors": [], "created_at": now}
            for t, c in (("t1", "cmp_a"), ("t2", "cmp_b"), ("t3", "cmp_a"), ("t4", None))])
        connection.execute(schedules.insert(), [
            {"id": schedule_id, "start_date": date(2027, 1, 4), "horizon_days": 30,
             "campaign_ids": [], "result": stored, "created_by": "k", "created_at": now}
            for schedule_id, stored in (("sch_1", result),
                                        ("sch_2", {"assignments": [], "late": []}))])
    engine.dispose()
    command.upgrade(config, "head")
    assert parts_of(database_url, "sch_1") == {"cmp_a": (["t3", "t1"], []),
                                               "cmp_b": (["t2"], ["t2"])}
    assert parts_of(database_url, "sch_2") == {}
    engine = create_engine(database_url)
    with Session(engine) as session:
        [stored] = session.exec(select(ScheduleCampaign).where(
            ScheduleCampaign.campaign_id == "cmp_b")).all()
        schedule = session.get(Schedule, "sch_1")
        assert schedule is not None
        # The rows hold the result's entries as they are, not a summary of them.
        assert (stored.assignments, stored.late) == ([schedule.result["assignments"][1]],
                                                     [schedule.result["late"][0]])
        assert session.exec(select(col(ScheduleCampaign.schedule_id)).distinct()).all() == [
            "sch_1"]
    engine.dispose()
