"""The calendar view for a date range, and the conflicts report."""
import uuid


def test_calendar_view_filters_and_pages(api):
    owner = f"owner-{uuid.uuid4().hex[:6]}"
    made = [api.campaign(owner=owner, name=f"c{i}", channels=channels,
                         start_date=start, end_date=end)
            for i, (channels, start, end) in enumerate([
                (["search"], "2027-05-01", "2027-05-31"), (["social"], "2027-05-10", "2027-06-10"),
                (["search", "video"], "2027-06-01", "2027-06-30"), (["search"], "2027-08-01", "2027-08-31")])]
    api.milestone(made[0], name="in range", due_date="2027-05-20")
    api.milestone(made[0], name="too early", due_date="2027-05-02")
    view = api.ok(api.get("/calendar", params={"from": "2027-05-15", "to": "2027-06-15", "owner": owner}))
    assert [e["name"] for e in view["items"]] == ["c0", "c1", "c2"]
    assert [m["name"] for m in view["items"][0]["milestones"]] == ["in range"]
    searched = api.ok(api.get("/calendar", params={"from": "2027-05-15", "to": "2027-06-15",
                                                   "owner": owner, "channel": "search"}))
    assert [e["name"] for e in searched["items"]] == ["c0", "c2"]
    pages, cursor = [], None
    while True:
        page = api.ok(api.get("/calendar", params={"from": "2027-01-01", "to": "2027-12-31",
                                                   "owner": owner, "limit": 3}
                              | ({"cursor": cursor} if cursor else {})))
        pages.append([e["name"] for e in page["items"]])
        if not (cursor := page["next_cursor"]):
            break
    assert pages == [["c0", "c1", "c2"], ["c3"]]
    bad = api.get("/calendar", params={"from": "2027-06-01", "to": "2027-05-01"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "to"


def test_conflicts_report_each_kind(api):
    channel = "affiliate"   # no other test here bursts on it in March 2029
    # Two campaigns on one channel: their bursts overlap, and B launches in A's contingency.
    a = api.from_template("flash_sale", launch="2029-03-15", channels=[channel, "email"], name="A")
    b = api.from_template("flash_sale", launch="2029-03-16", channels=[channel], name="B")
    # A milestone outside its campaign, and a dependency broken by editing the window away.
    outside = api.milestone(a, name="Late report", due_date="2029-04-30")
    kinds = {}
    for conflict in api.ok(api.get("/conflicts", params={"from": "2029-03-01", "to": "2029-05-01"})):
        if set(conflict["campaign_ids"]) & {a["id"], b["id"]}:
            kinds.setdefault(conflict["kind"], []).append(conflict)
    overlap, = kinds["burst_overlap"]
    assert (overlap["channel"], overlap["start_date"], overlap["end_date"]) == \
        (channel, "2029-03-16", "2029-03-17")
    assert kinds["milestone_outside_window"][0]["milestone_ids"] == [outside["id"]]
    launches = {tuple(c["campaign_ids"]) for c in kinds["launch_in_contingency"]}
    assert launches == {(b["id"], a["id"]), (a["id"], b["id"])}
    assert "dependency_violated" not in kinds


def test_a_dependency_broken_by_a_market_change_is_reported(api):
    campaign = api.campaign(start_date="2027-03-01", end_date="2027-04-30", market="US")
    first = api.milestone(campaign, name="First", due_date="2027-03-26")            # Friday
    second = api.milestone(campaign, name="Second", due_date="2027-03-29",          # Monday
                           depends_on=[{"milestone_id": first["id"], "lag_days": 1}])
    window = {"from": "2027-03-01", "to": "2027-04-30"}
    assert not [c for c in api.ok(api.get("/conflicts", params=window))
                if campaign["id"] in c["campaign_ids"]]
    # In Germany Easter Monday (29 March 2027) is a holiday: one working day after Friday is Tuesday.
    path = f"/campaigns/{campaign['id']}"
    api.ok(api.patch(path, {"market": "DE", "time_zone": "Europe/Berlin"},
                     headers={"If-Match": api.get(path).headers["etag"]}))
    # Both are now on German holidays too (Good Friday, Easter Monday), and reported as such.
    found = [c for c in api.ok(api.get("/conflicts", params=window))
             if campaign["id"] in c["campaign_ids"]]
    assert [(c["kind"], c["milestone_ids"]) for c in found] == [
        ("non_working_day", [first["id"]]), ("non_working_day", [second["id"]]),
        ("dependency_violated", [first["id"], second["id"]])]
    broken = found[-1]
    assert broken["milestone_ids"] == [first["id"], second["id"]] and broken["end_date"] == "2027-03-30"
    # April holds the campaign but not its milestones: none of these conflicts.
    assert not [c for c in api.ok(api.get("/conflicts", params={"from": "2027-04-01",
                                                                "to": "2027-04-30"}))
                if campaign["id"] in c["campaign_ids"]]


def test_conflicts_narrow_by_kind_channel_and_campaign_and_sum_up(api):
    window = {"from": "2031-03-01", "to": "2031-05-01"}    # no other test's campaigns here
    # As in test_conflicts_report_each_kind: the bursts of A and B overlap on affiliate (one
    # conflict), B launches in A's contingency window and A in B's (two), and a milestone of
    # A lies outside its campaign (one); C bursts alone on search.
    a = api.from_template("flash_sale", launch="2031-03-13", channels=["affiliate", "email"], name="A")
    b = api.from_template("flash_sale", launch="2031-03-14", channels=["affiliate"], name="B")
    c = api.from_template("flash_sale", launch="2031-04-15", channels=["search"], name="C")
    api.milestone(a, name="Late report", due_date="2031-04-30")
    every = api.ok(api.get("/conflicts", params=window))
    assert sorted(x["kind"] for x in every) == ["burst_overlap", "launch_in_contingency",
                                               "launch_in_contingency", "milestone_outside_window"]
    assert api.ok(api.get("/conflicts", params=window | {"kind": "launch_in_contingency"})) == \
        [x for x in every if x["kind"] == "launch_in_contingency"]
    assert api.ok(api.get("/conflicts", params=window | {"channel": "affiliate"})) == \
        [x for x in every if x["channel"] == "affiliate"]
    assert api.ok(api.get("/conflicts", params=window | {"campaign_id": c["id"]})) == []
    assert api.ok(api.get("/conflicts", params=window | {"campaign_id": b["id"], "kind":
                                                         "burst_overlap"})) == every[:1]
    assert api.ok(api.get("/conflicts/summary", params=window)) == {
        "total": 4, "by_kind": {"burst_overlap": 1, "launch_in_contingency": 2,
                                "milestone_outside_window": 1},
        "by_channel": {"affiliate": 3}, "by_campaign": {a["id"]: 4, b["id"]: 3}}
    bad = api.get("/conflicts", params=window | {"kind": "everything"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "kind"


def test_a_range_holds_only_the_conflicts_that_meet_it(api):
    # The trial's case (issue 17): two campaigns of January-June whose bursts overlap on
    # 10-14 February; May held that February overlap. A third has a milestone in August,
    # after its end: August holds it, though the campaign does not overlap August.
    owner = f"range-{uuid.uuid4().hex[:6]}"
    made = []
    for name, first, last in [("X", "2034-02-03", "2034-02-14"), ("Y", "2034-02-10", "2034-02-21")]:
        campaign = api.campaign(name=name, owner=owner, channels=["email"],
                                start_date="2034-01-06", end_date="2034-06-27")
        api.ok(api.post(f"/campaigns/{campaign['id']}/phases",
                        {"kind": "burst", "start_date": first, "end_date": last}), 201)
        made.append(campaign["id"])
    late = api.campaign(name="Z", owner=owner, channels=["video"],
                        start_date="2034-01-06", end_date="2034-06-27")
    report = api.milestone(late, name="Late report", due_date="2034-08-04")   # a Friday
    ours = {*made, late["id"]}

    def conflicts(first: str, last: str) -> list[tuple[str, str, str]]:
        found = api.ok(api.get("/conflicts", params={"from": first, "to": last}))
        return [(c["kind"], c["start_date"], c["end_date"]) for c in found
                if set(c["campaign_ids"]) & ours]

    def counted(first: str, last: str) -> dict[str, int]:
        summary = api.ok(api.get("/conflicts/summary", params={"from": first, "to": last}))
        return {i: n for i, n in summary["by_campaign"].items() if i in ours}

    overlap = ("burst_overlap", "2034-02-10", "2034-02-14")
    outside = ("milestone_outside_window", "2034-08-04", "2034-08-04")
    assert conflicts("2034-02-01", "2034-02-28") == [overlap]
    assert conflicts("2034-02-14", "2034-02-14") == [overlap]   # its last day
    assert conflicts("2034-05-01", "2034-05-31") == []
    assert conflicts("2034-02-15", "2034-03-31") == []          # the day after it
    assert counted("2034-05-01", "2034-05-31") == {}
    assert conflicts("2034-08-01", "2034-08-31") == [outside]
    assert counted("2034-08-01", "2034-08-31") == {late["id"]: 1}
    assert conflicts("2034-01-01", "2034-12-31") == [overlap, outside]
    found = api.ok(api.get("/conflicts", params={"from": "2034-08-01", "to": "2034-08-31",
                                                 "campaign_id": late["id"]}))
    assert [c["milestone_ids"] for c in found] == [[report["id"]]]
