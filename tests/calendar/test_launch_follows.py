"""A template's phases and contingency window follow its launch (working-day offsets), a
template launch on a non-working day is refused or adjusted, and hand-made milestones on
non-working days are accepted and reported."""
from tests.calendar.test_events import events


def spans(campaign: dict) -> dict[str, tuple[str, str]]:
    return {p["kind"]: (p["start_date"], p["end_date"]) for p in campaign["phases"]}


def test_moving_the_launch_moves_phases_window_and_campaign_end(api):
    campaign = api.from_template("standard", launch="2027-03-15")
    launch = next(m for m in campaign["milestones"] if m["kind"] == "launch")
    window = next(m for m in campaign["milestones"] if m["kind"] == "contingency")
    assert window["anchor_id"] == launch["id"]
    assert {p["anchor_id"] for p in campaign["phases"]} == {launch["id"]}
    seen = events(api, campaign)[-1]["id"]
    result = api.ok(api.move(campaign, launch["id"], "2027-03-18"))
    assert [(m["name"], m["from_date"], m["to_date"]) for m in result["moved"]] == [
        ("Launch", "2027-03-15", "2027-03-18"),
        ("Launch contingency window", "2027-03-15", "2027-03-18")]
    after = api.ok(api.get(f"/campaigns/{campaign['id']}"))
    # Working days (US) from Mon 03-15 → from Thu 03-18: warm-up began 5 before (03-08 →
    # 03-11); burst ended the day before +10 (03-29 → 04-01); sustain before +25 (04-19 →
    # 04-22); wrap-up before +30 (04-26 → 04-29).
    assert spans(after) == {"warmup": ("2027-03-11", "2027-03-17"),
                            "burst": ("2027-03-18", "2027-03-31"),
                            "sustain": ("2027-04-01", "2027-04-21"),
                            "wrapup": ("2027-04-22", "2027-04-28")}
    assert (after["start_date"], after["end_date"]) == (campaign["start_date"], "2027-04-28")
    new = events(api, campaign, after=seen)
    assert [i["type"] for i in new] == (["milestone.moved"] * 2 + ["phase.changed"] * 4
                                        + ["campaign.updated"])
    assert new[2]["data"] == {"phase_id": after["phases"][0]["id"], "kind": "warmup",
                              "change": "moved",
                              "from": {"start_date": "2027-03-08", "end_date": "2027-03-14"},
                              "to": {"start_date": "2027-03-11", "end_date": "2027-03-17"}}
    assert new[-1]["data"] == {"changes": {"end_date": {"from": "2027-04-25",
                                                        "to": "2027-04-28"}}}


def test_a_cascade_that_reaches_the_launch_moves_what_follows_it(api):
    campaign = api.from_template("flash_sale", launch="2027-03-15")
    by_name = {m["name"]: m for m in campaign["milestones"]}
    gate = by_name["Launch readiness review"]
    # Readiness review Fri 03-12 → Tue 03-16: the launch (1 working day after) → Wed 03-17.
    result = api.ok(api.move(campaign, gate["id"], "2027-03-16"))
    assert [(m["name"], m["to_date"]) for m in result["moved"]] == [
        ("Launch readiness review", "2027-03-16"), ("Launch", "2027-03-17"),
        ("Launch contingency window", "2027-03-17")]
    after = api.ok(api.get(f"/campaigns/{campaign['id']}"))
    # Flash sale from Mon 03-15, in working days: warm-up Sat 03-13 ("Fri 03-12, -1, + 1 day")
    # to the launch; burst Mon..Wed, to Thu 03-18 (+3); wrap-up Thu..Fri, to Sat 03-20
    # ("Fri 03-19, +4, + 1 day"). From Wed 03-17: -1 is Tue 03-16, whose next day works, so
    # the warm-up is Tue 03-16; +3 is Mon 03-22, so the burst runs Wed 03-17..Sun 03-21;
    # +4 is Tue 03-23 (next day works), so the wrap-up is Mon 03-22 alone.
    assert spans(after) == {"warmup": ("2027-03-16", "2027-03-16"),
                            "burst": ("2027-03-17", "2027-03-21"),
                            "wrapup": ("2027-03-22", "2027-03-22")}


def test_conflicts_check_the_moved_contingency_window(api):
    campaign = api.from_template("standard", launch="2027-03-15", channels=["offline"])
    other = api.campaign(channels=["offline"], start_date="2027-03-01", end_date="2027-03-31")
    api.milestone(other, kind="launch", name="Other launch", due_date="2027-03-19")
    query = {"from": "2027-03-01", "to": "2027-03-31"}

    def in_window() -> list[dict]:
        return [c for c in api.ok(api.get("/conflicts", params=query))
                if c["kind"] == "launch_in_contingency" and other["id"] in c["campaign_ids"]]

    assert in_window() == []   # the window is 03-13..03-17 (48 h around Mon 03-15)
    launch = next(m for m in campaign["milestones"] if m["kind"] == "launch")
    api.ok(api.move(campaign, launch["id"], "2027-03-18"))
    found = in_window()
    assert [(c["start_date"], c["end_date"], c["channel"]) for c in found] == [
        ("2027-03-16", "2027-03-20", "offline")]


def test_a_template_launch_on_a_market_holiday_is_a_422_proposing_the_next_working_day(api):
    response = api.post("/campaigns", {**_template_body("DE"), "launch_date": "2027-12-25"})
    assert response.status_code == 422
    assert response.json()["errors"] == [{
        "in": "body", "field": "launch_date", "type": "value_error",
        "detail": "Saturday 2027-12-25 is not a working day in DE (a weekend day and a public "
                  "holiday); the next working day is 2027-12-27: send that launch_date, or add "
                  '"adjust": "next_working_day" to launch then'}]
    campaign = api.ok(api.post("/campaigns", {**_template_body("DE"), "launch_date": "2027-12-25",
                                              "adjust": "next_working_day"}), 201)
    launch = next(m for m in campaign["milestones"] if m["kind"] == "launch")
    assert launch["due_date"] == "2027-12-27"
    conflicts = api.ok(api.get("/conflicts", params={"from": "2027-11-01", "to": "2028-03-31"}))
    assert [c for c in conflicts if campaign["id"] in c["campaign_ids"]] == []


def test_adjust_needs_a_template(api):
    response = api.post("/campaigns", {**_template_body("US"), "template": None,
                                       "launch_date": None, "start_date": "2027-01-01",
                                       "end_date": "2027-01-31", "adjust": "next_working_day"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "adjust"


def test_a_hand_made_milestone_on_a_non_working_day_is_accepted_and_listed(api):
    campaign = api.campaign()
    saturday = api.milestone(campaign, kind="channel_test", name="Weekend test",
                             due_date="2026-12-05")
    conflicts = [c for c in api.ok(api.get("/conflicts", params={"from": "2026-12-01",
                                                                 "to": "2026-12-31"}))
                 if c["kind"] == "non_working_day" and campaign["id"] in c["campaign_ids"]]
    assert conflicts == [{
        "kind": "non_working_day", "campaign_ids": [campaign["id"]],
        "milestone_ids": [saturday["id"]], "channel": None, "start_date": "2026-12-05",
        "end_date": "2026-12-05",
        "detail": "'Weekend test' is due Saturday 2026-12-05, not a working day in US; the "
                  "next one is 2026-12-07"}]


def _template_body(market: str) -> dict:
    from tests.calendar.conftest import CAMPAIGN
    body = {k: v for k, v in CAMPAIGN.items() if k not in ("start_date", "end_date")}
    return body | {"market": market, "time_zone": "Europe/Berlin", "template": "standard"}


def test_a_launch_moved_onto_a_day_off_keeps_each_phase_at_least_its_first_day(api):
    # The trial's case (issue 17): DE-BY, flash sale launching Thu 2027-03-25 (Good Friday
    # 03-26 and Easter Monday 03-29 are holidays): burst Thu..Sat, wrap-up Sun..Mon, both
    # after the launch's working day. Moved to Sun 04-04 (whose next day works) they have
    # that Sunday alone, and the move had made the burst end the day before it began.
    market = {"market": "DE-BY", "time_zone": "Europe/Berlin", "channels": ["display"]}
    campaign = api.from_template("flash_sale", launch="2027-03-25", **market)
    other = api.from_template("flash_sale", launch="2027-04-02", **market)
    assert spans(campaign) == {"warmup": ("2027-03-23", "2027-03-24"),
                               "burst": ("2027-03-25", "2027-03-27"),
                               "wrapup": ("2027-03-28", "2027-03-29")}
    launch = next(m for m in campaign["milestones"] if m["kind"] == "launch")
    api.ok(api.move(campaign, launch["id"], "2027-04-04"))
    after = api.ok(api.get(f"/campaigns/{campaign['id']}"))
    assert spans(after) == {"warmup": ("2027-04-01", "2027-04-03"),
                            "burst": ("2027-04-04", "2027-04-04"),
                            "wrapup": ("2027-04-04", "2027-04-04")}
    assert after["start_date"] <= "2027-04-01" and after["end_date"] == "2027-04-04"
    listed = api.ok(api.get("/conflicts", params={"from": "2027-03-01", "to": "2027-04-30",
                                                  "campaign_id": campaign["id"]}))
    other_burst = spans(other)["burst"]
    assert other_burst[0] <= "2027-04-04" <= other_burst[1]
    # One overlap, of the one day; the launch (and its window, which follows it) on a
    # Sunday, as any milestone moved there by hand.
    assert [(c["start_date"], c["end_date"]) for c in listed
            if c["kind"] == "burst_overlap"] == [("2027-04-04", "2027-04-04")]
    assert [c["milestone_ids"][0] for c in listed if c["kind"] == "non_working_day"][0] \
        == launch["id"]
    assert all(p["start_date"] <= p["end_date"] for p in after["phases"])
