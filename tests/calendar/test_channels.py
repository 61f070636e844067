"""Campaign channels are the department's channel kinds (shared/channels.py), and migration
0007 maps the names stored before them."""
import json
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient

from services.calendar.app import MIGRATIONS, create_app
from services.calendar.config import CalendarSettings
from shared.channels import CHANNEL_KINDS
from shared.migrations import alembic_config
from tests.calendar.conftest import CAMPAIGN, Api
from tests.conftest import TEST_SECRET


def test_an_unknown_channel_is_a_422_listing_the_kinds(api):
    response = api.post("/campaigns", CAMPAIGN | {"channels": ["search", "tv"]})
    assert response.status_code == 422
    error, = response.json()["errors"]
    assert error["field"] == "channels[1]"
    assert all(f"'{kind}'" in error["detail"] for kind in CHANNEL_KINDS), error["detail"]
    repeated = api.post("/campaigns", CAMPAIGN | {"channels": ["email", "email"]})
    assert repeated.status_code == 422 and "repeated: email" in repeated.text
    campaign = api.campaign(channels=list(CHANNEL_KINDS))
    path = f"/campaigns/{campaign['id']}"
    etag = api.get(path).headers["etag"]
    assert api.patch(path, {"channels": ["Social"]}, headers={"If-Match": etag}).status_code == 422
    assert api.ok(api.patch(path, {"channels": ["kol"]}, headers={"If-Match": etag}))["channels"] == ["kol"]
    bulk = api.post("/campaigns/bulk", {"campaigns": [CAMPAIGN | {"channels": ["radio"]}]})
    assert bulk.status_code == 422 and bulk.json()["errors"][0]["field"] == "campaigns[0].channels.0"
    assert api.get("/calendar", params={"from": "2026-12-01", "to": "2026-12-31",
                                        "channel": "tv"}).status_code == 422
    assert api.post("/feed-tokens", {"label": "x", "filters": {"channel": "tv"}}).status_code == 422


def _legacy(url: str) -> None:
    """Campaigns and a feed token as stored before channel kinds."""
    now = datetime(2026, 11, 1, tzinfo=UTC)
    metadata = sa.MetaData()
    campaign = sa.Table("campaign", metadata, autoload_with=(engine := sa.create_engine(url)))
    token = sa.Table("feed_token", metadata, autoload_with=engine)
    base = {"name": "Old", "objective": CAMPAIGN["objective"], "owner": "ana", "market": "US",
            "time_zone": "America/New_York", "start_date": date(2026, 12, 1),
            "end_date": date(2026, 12, 31), "priority": 3, "status": "draft", "template": None,
            "reviews": [], "version": 4, "created_by": "key:old", "created_at": now,
            "updated_at": now}
    with engine.begin() as connection:
        connection.execute(campaign.insert(), [
            base | {"id": "cmp_a", "channels": ["Paid Search", "facebook", "TV", "newsletter"]},
            base | {"id": "cmp_b", "channels": ["search", "Instagram", "tiktok-creators",
                                                "podcast"]},
            base | {"id": "cmp_c", "channels": ["email", "kol"]}])
        connection.execute(token.insert(), [
            {"id": "feed_a", "token_hash": "a" * 64, "campaign_id": None,
             "filters": {"channel": "YouTube", "status": None, "owner": None}, "label": "a",
             "created_by": "key:old", "created_at": now},
            {"id": "feed_b", "token_hash": "b" * 64, "campaign_id": None,
             "filters": {"channel": "podcast", "status": None, "owner": None}, "label": "b",
             "created_by": "key:old", "created_at": now}])
    engine.dispose()


def test_stored_channel_names_become_kinds_and_the_rest_stays_visible(database_url):
    config = alembic_config(MIGRATIONS, database_url)
    command.upgrade(config, "0006")
    _legacy(database_url)
    command.upgrade(config, "head")
    settings = CalendarSettings(database_url=database_url, internal_secret=TEST_SECRET)
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        a, b, c = (api.ok(api.get(f"/campaigns/cmp_{x}")) for x in "abc")
        assert (a["channels"], a["version"]) == (["search", "social", "offline", "email"], 5)
        # Names without a kind become `other`, once, and are named in the audit entry.
        assert (b["channels"], b["version"]) == (["search", "social", "other"], 5)
        assert (c["channels"], c["version"]) == (["email", "kol"], 4)   # already kinds
        audit = api.ok(api.get("/audit", params={"campaign_id": "cmp_b"}))["items"]
        assert [(e["action"], e["principal"], e["before"], e["after"]) for e in audit] == [
            ("campaign.channels_mapped", "migration:0007",
             {"channels": ["search", "Instagram", "tiktok-creators", "podcast"]},
             {"channels": ["search", "social", "other"],
              "unmapped": ["tiktok-creators", "podcast"]})]
        feed = api.ok(api.get("/events", role="viewer"))["items"]
        assert [(e["id"], e["type"], e["campaign_id"], e["data"]) for e in feed] == [
            ("1", "campaign.updated", "cmp_a", {"changes": {"channels": {
                "from": ["Paid Search", "facebook", "TV", "newsletter"],
                "to": ["search", "social", "offline", "email"]}}}),
            ("2", "campaign.updated", "cmp_b", {"changes": {"channels": {
                "from": ["search", "Instagram", "tiktok-creators", "podcast"],
                "to": ["search", "social", "other"]}}})]
        tokens = {t["id"]: t["filters"]["channel"] for t in api.ok(api.get("/feed-tokens"))}
        assert tokens == {"feed_a": "video", "feed_b": "other"}
        # A campaign changed since keeps its change on a downgrade; the others get their
        # names back.
        api.ok(api.patch("/campaigns/cmp_a", {"channels": ["display"]},
                         headers={"If-Match": '"5"'}))
    command.downgrade(config, "0006")
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        # Read as stored (text on SQLite, JSON on PostgreSQL).
        channels = {i: _json(v) for i, v in connection.execute(
            sa.text("SELECT id, channels FROM campaign"))}
        filters = {i: _json(v)["channel"] for i, v in connection.execute(
            sa.text("SELECT id, filters FROM feed_token"))}
    engine.dispose()
    assert channels == {"cmp_a": ["display"],
                        "cmp_b": ["search", "Instagram", "tiktok-creators", "podcast"],
                        "cmp_c": ["email", "kol"]}
    assert filters == {"feed_a": "YouTube", "feed_b": "podcast"}


def _json(value):
    return json.loads(value) if isinstance(value, str) else value
