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


def test_a_launch_in_a_window_is_held_by_the_ranges_the_window_meets(api):
    # The trial's cases (issue 17): a 96 h window on its campaign's last day reaches past the
    # campaign's end, where another campaign launches; and a launch on the last day of its
    # campaign, inside a window that runs on after it. A range of the window's days after
    # either campaign's end held neither.
    ours: set[str] = set()

    def made(name: str, first: str, last: str, kind: str, due: str, **extra) -> str:
        campaign = api.campaign(name=name, channels=["display"], start_date=first, end_date=last)
        api.milestone(campaign, kind=kind, name=f"{name} {kind}", due_date=due, **extra)
        ours.add(campaign["id"])
        return campaign["id"]

    owner = made("A", "2035-09-01", "2035-09-12", "contingency", "2035-09-12", window_hours=96)
    launcher = made("B", "2035-09-14", "2035-09-30", "launch", "2035-09-14")
    owner2 = made("C", "2035-11-01", "2035-11-30", "contingency", "2035-11-15")
    launcher2 = made("D", "2035-11-06", "2035-11-14", "launch", "2035-11-14")

    def windows(first: str, last: str) -> list[tuple[list[str], str, str]]:
        found = api.ok(api.get("/conflicts", params={"from": first, "to": last,
                                                     "kind": "launch_in_contingency"}))
        return [(c["campaign_ids"], c["start_date"], c["end_date"]) for c in found
                if set(c["campaign_ids"]) & ours]

    def counted(first: str, last: str) -> dict[str, int]:
        summary = api.ok(api.get("/conflicts/summary", params={"from": first, "to": last}))
        return {i: n for i, n in summary["by_campaign"].items() if i in ours}

    first = ([launcher, owner], "2035-09-08", "2035-09-16")
    second = ([launcher2, owner2], "2035-11-13", "2035-11-17")
    for start, end in [("2035-09-01", "2035-09-30"), ("2035-09-13", "2035-09-20"),
                       ("2035-09-15", "2035-09-16"), ("2035-09-16", "2035-09-16"),
                       ("2035-09-08", "2035-09-08")]:
        assert windows(start, end) == [first], (start, end)
    assert windows("2035-09-17", "2035-09-30") == windows("2035-09-01", "2035-09-07") == []
    for start, end in [("2035-11-15", "2035-11-20"), ("2035-11-17", "2035-11-17")]:
        assert windows(start, end) == [second], (start, end)
        assert counted(start, end) == {owner2: 1, launcher2: 1}
    assert windows("2035-11-18", "2035-11-30") == []


def test_a_query_parameter_is_given_once_and_a_range_holds_at_most_731_days(api):
    # `kind=a&kind=b` was read as `kind=b`; `from=2027-01-01&to=2029-01-01` (732 days, both
    # ends counted, as the range holds them) was taken as "at most 731 days".
    window = {"from": "2027-01-01", "to": "2027-12-31"}
    for path, field, values in (("/conflicts", "kind", ("burst_overlap", "non_working_day")),
                                ("/calendar", "channel", ("search", "email")),
                                ("/campaigns", "status", ("draft", "planned"))):
        dates = list(window.items()) if path != "/campaigns" else []
        repeated = api.get(path, params=dates + [(field, v) for v in values])
        assert repeated.status_code == 422, path
        assert repeated.json()["errors"] == [{"in": "query", "field": field, "type": "value_error",
                                              "detail": "this parameter may be given once"}]
    assert api.get("/conflicts", params=window | {"kind": "burst_overlap"}).status_code == 200
    for path in ("/conflicts", "/conflicts/summary", "/calendar"):
        assert api.get(path, params={"from": "2027-01-01", "to": "2028-12-31"}).status_code == 200
        longer = api.get(path, params={"from": "2027-01-01", "to": "2029-01-01"})
        assert longer.status_code == 422
        assert longer.json()["errors"][0]["detail"] == (
            "a range holds at most 731 days, `from` and `to` included "
            "(2027-01-01..2029-01-01 holds 732)")
