"""channel kinds

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 21:02:40.519832

A campaign's channels become the department's channel kinds (issue 16, item 2). Stored names
that say a kind in other words (`paid_search`, `Facebook`, `newsletter`, `TV` ...) become that
kind; any other name becomes `other`. Nothing is lost from sight: each campaign (and feed token
filter) that changed gets an audit entry (`campaign.channels_mapped`,
`feed_token.filters_mapped`, principal `migration:0007`) with the names before, the kinds after
and the names that had no kind (`unmapped`), and each campaign a `campaign.updated` event and a
new version, so the budget and the planner follow and clients' ETags change.

The vocabulary is frozen here as it was when this migration was written: a migration must
do the same thing whenever it runs, whatever later code says.
"""
from datetime import UTC, datetime
import re
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PRINCIPAL = "migration:0007"
KINDS = ("search", "social", "video", "kol", "email", "display", "affiliate", "offline", "other")
SYNONYMS = {
    "search": ("sea", "sem", "ppc", "paid_search", "search_ads", "google_ads", "bing_ads",
               "adwords", "seo"),
    "social": ("paid_social", "social_media", "facebook", "instagram", "meta", "tiktok",
               "linkedin", "twitter", "x", "pinterest", "snapchat"),
    "video": ("youtube", "online_video", "ctv", "ott", "connected_tv"),
    "kol": ("influencer", "influencers", "influencer_marketing", "creators", "key_opinion_leaders"),
    "email": ("e_mail", "mail", "newsletter", "newsletters", "crm"),
    "display": ("banner", "banners", "programmatic", "native", "retargeting", "gdn"),
    "affiliate": ("affiliates", "partners", "partner", "partnerships"),
    "offline": ("tv", "radio", "print", "ooh", "dooh", "outdoor", "billboard", "billboards",
                "events", "direct_mail"),
}
KIND_OF = {name: kind for kind, names in SYNONYMS.items() for name in names} | {k: k for k in KINDS}

campaign = sa.table("campaign", sa.column("id"), sa.column("channels", sa.JSON()),
                    sa.column("version"), sa.column("updated_at", sa.DateTime(timezone=True)))
feed_token = sa.table("feed_token", sa.column("id"), sa.column("campaign_id"),
                      sa.column("filters", sa.JSON()))
audit_entry = sa.table("audit_entry", sa.column("at", sa.DateTime(timezone=True)),
                       sa.column("principal"), sa.column("role"), sa.column("action"),
                       sa.column("target"), sa.column("campaign_id"),
                       sa.column("before", sa.JSON()), sa.column("after", sa.JSON()))
sequence = sa.table("event_sequence", sa.column("id"), sa.column("last"))
event = sa.table("calendar_event", sa.column("position"), sa.column("type"),
                 sa.column("campaign_id"), sa.column("occurred_at", sa.DateTime(timezone=True)),
                 sa.column("data", sa.JSON()))


def kind_of(name: str) -> str | None:
    """The kind a stored channel name means, or None (`Paid Search` and `paid-search` are
    `paid_search`)."""
    return KIND_OF.get(re.sub(r"[\s\-./]+", "_", name.strip().lower()).strip("_"))


def _kinds(names: list[str]) -> tuple[list[str], list[str]]:
    kinds, unmapped = [], []
    for name in names:
        kind = kind_of(name)
        if kind is None:
            unmapped.append(name)
            kind = "other"
        if kind not in kinds:
            kinds.append(kind)
    return kinds, unmapped


def upgrade() -> None:
    """Map stored channel names to kinds; record every change in the audit log and feed."""
    bind = op.get_bind()
    now = datetime.now(UTC)
    audits, events = [], []
    for row in bind.execute(sa.select(campaign).order_by(campaign.c.id)).all():
        kinds, unmapped = _kinds(list(row.channels))
        if kinds == row.channels:
            continue
        bind.execute(campaign.update().where(campaign.c.id == row.id).values(
            channels=kinds, version=row.version + 1, updated_at=now))
        audits.append({"at": now, "principal": PRINCIPAL, "role": "admin",
                       "action": "campaign.channels_mapped", "target": row.id,
                       "campaign_id": row.id, "before": {"channels": row.channels},
                       "after": {"channels": kinds, "unmapped": unmapped}})
        events.append({"type": "campaign.updated", "campaign_id": row.id, "occurred_at": now,
                       "data": {"changes": {"channels": {"from": row.channels, "to": kinds}}}})
    for row in bind.execute(sa.select(feed_token).order_by(feed_token.c.id)).all():
        channel = (row.filters or {}).get("channel")
        if channel is None or channel in KINDS:
            continue
        kind = kind_of(channel) or "other"
        bind.execute(feed_token.update().where(feed_token.c.id == row.id).values(
            filters=row.filters | {"channel": kind}))
        audits.append({"at": now, "principal": PRINCIPAL, "role": "admin",
                       "action": "feed_token.filters_mapped", "target": row.id,
                       "campaign_id": row.campaign_id, "before": {"filters": row.filters},
                       "after": {"filters": row.filters | {"channel": kind},
                                 "unmapped": [] if kind_of(channel) else [channel]}})
    if audits:
        op.bulk_insert(audit_entry, audits)
    if events:
        last = bind.execute(sa.select(sequence.c.last).where(sequence.c.id == 1)).scalar_one()
        bind.execute(sequence.update().where(sequence.c.id == 1).values(last=last + len(events)))
        op.bulk_insert(event, [e | {"position": last + i} for i, e in enumerate(events, start=1)])


def downgrade() -> None:
    """Give the names back to the campaigns and feed tokens not changed since the upgrade (the
    audit log is append-only: its entries stay)."""
    bind = op.get_bind()
    for entry in bind.execute(sa.select(audit_entry).where(audit_entry.c.principal == PRINCIPAL)
                              ).all():
        if entry.action == "campaign.channels_mapped":
            table, column, before, after = campaign, "channels", entry.before["channels"], \
                entry.after["channels"]
        else:
            table, column, before, after = feed_token, "filters", entry.before["filters"], \
                entry.after["filters"]
        current = bind.execute(sa.select(table.c[column]).where(table.c.id == entry.target)
                               ).scalar_one_or_none()
        if current == after:
            bind.execute(table.update().where(table.c.id == entry.target)
                         .values({column: before}))
