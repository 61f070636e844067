"""A phase read and edited in place, at the version the editor read."""
from tests.calendar.test_events import events


def test_a_phase_is_read_and_edited_with_if_match(api):
    campaign = api.campaign()   # 2026-12-01 .. 2026-12-31
    phase = api.ok(api.post(f"/campaigns/{campaign['id']}/phases",
                            {"kind": "burst", "start_date": "2026-12-07",
                             "end_date": "2026-12-13"}), 201)
    path = f"/campaigns/{campaign['id']}/phases/{phase['id']}"
    read = api.get(path, role="viewer")
    assert api.ok(read) == phase and phase["version"] == 1 and read.headers["etag"] == '"1"'
    assert api.get(path, headers={"If-None-Match": '"1"'}).status_code == 304
    seen = events(api, campaign)[-1]["id"]

    assert api.patch(path, {"end_date": "2026-12-20"}).status_code == 428
    assert api.patch(path, {"end_date": "2026-12-20"}, headers={"If-Match": '"7"'}).status_code == 412
    moved = api.patch(path, {"end_date": "2026-12-20"}, headers={"If-Match": '"1"'})
    assert api.ok(moved) == phase | {"end_date": "2026-12-20", "version": 2}
    assert moved.headers["etag"] == '"2"'
    renamed = api.ok(api.patch(path, {"kind": "sustain"}, headers={"If-Match": '"2"'}))
    assert (renamed["kind"], renamed["version"]) == ("sustain", 3)

    new = events(api, campaign, after=seen)
    assert [e["data"] for e in new] == [
        {"phase_id": phase["id"], "kind": "burst", "change": "moved",
         "from": {"start_date": "2026-12-07", "end_date": "2026-12-13"},
         "to": {"start_date": "2026-12-07", "end_date": "2026-12-20"}},
        {"phase_id": phase["id"], "kind": "sustain", "from_kind": "burst", "change": "updated",
         "from": {"start_date": "2026-12-07", "end_date": "2026-12-20"},
         "to": {"start_date": "2026-12-07", "end_date": "2026-12-20"}}]
    assert [e["type"] for e in new] == ["phase.changed"] * 2
    after = api.ok(api.get(f"/campaigns/{campaign['id']}"))
    assert after["version"] == campaign["version"] + 3   # created, moved, renamed
    assert after["phases"] == [renamed]
    audit = api.ok(api.get("/audit", params={"campaign_id": campaign["id"]}))["items"]
    assert [e["action"] for e in audit][-2:] == ["phase.updated", "phase.updated"]
    assert audit[-1]["before"]["kind"] == "burst" and audit[-1]["after"]["kind"] == "sustain"

    # Sending what it already is changes nothing: no version, no event.
    assert api.ok(api.patch(path, {"kind": "sustain"}, headers={"If-Match": '"3"'}))["version"] == 3
    assert len(events(api, campaign, after=seen)) == 2


def test_a_phase_edit_keeps_the_phase_in_its_campaign(api):
    campaign = api.campaign()
    phase = api.ok(api.post(f"/campaigns/{campaign['id']}/phases",
                            {"kind": "warmup", "start_date": "2026-12-01",
                             "end_date": "2026-12-05"}), 201)
    path = f"/campaigns/{campaign['id']}/phases/{phase['id']}"
    for body, field in (({"end_date": "2027-01-05"}, "start_date"),
                        ({"start_date": "2026-12-09"}, "end_date"),
                        ({"kind": None}, "kind"), ({"kind": "launch"}, "kind"),
                        ({"anchor_id": None}, "anchor_id")):
        response = api.patch(path, body, headers={"If-Match": '"1"'})
        assert response.status_code == 422, body
        assert field in [e["field"] for e in response.json()["errors"]], response.text
    assert api.ok(api.get(path))["version"] == 1
    other = api.campaign()
    assert api.get(f"/campaigns/{other['id']}/phases/{phase['id']}").status_code == 404
    assert api.patch(f"/campaigns/{other['id']}/phases/{phase['id']}", {"kind": "burst"},
                     headers={"If-Match": '"1"'}).status_code == 404
    assert api.patch(path, {"kind": "burst"}, headers={"If-Match": '"1"'},
                     role="viewer").status_code == 403


def test_an_anchored_phase_edited_by_hand_keeps_following_its_launch(api):
    campaign = api.from_template("flash_sale", launch="2027-03-15")
    burst = next(p for p in campaign["phases"] if p["kind"] == "burst")
    path = f"/campaigns/{campaign['id']}/phases/{burst['id']}"
    # The burst ran Mon 15 - Wed 17 March; now to Thu 18.
    api.ok(api.patch(path, {"end_date": "2027-03-18"}, headers={"If-Match": '"1"'}))
    launch = next(m for m in campaign["milestones"] if m["kind"] == "launch")
    api.ok(api.move(campaign, launch["id"], "2027-03-16"))
    # It keeps its working-day offsets from the launch (graph.follow): it starts on the
    # launch, Tue 16; the day after its end (Fri 19, 4 working days after Mon 15) becomes
    # Mon 22 (4 after Tue 16), so it ends Sun 21. A new version again.
    moved = api.ok(api.get(path))
    assert (moved["start_date"], moved["end_date"], moved["version"]) == \
        ("2027-03-16", "2027-03-21", 3)
