"""calendar events consumer, linked campaigns

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 21:01:33.020423

The budget consumes the calendar's event feed (issue 15): its cursor and lease, and what it
keeps of each linked campaign (status, name, dates). Budgets made before this revision get a
campaign's row the first time a budget links it again (create or update); until then their
draws are not checked against the campaign's status.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel  # noqa: F401 (autogenerate writes sqlmodel column types)


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('event_consumer',
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('cursor', sa.String(length=100), nullable=True),
    sa.Column('holder', sa.String(length=200), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('applied', sa.BigInteger(), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pending', sa.BigInteger(), nullable=False),
    sa.Column('oldest_pending_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_event_consumer'))
    )
    op.create_table('linked_campaign',
    sa.Column('campaign_id', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=True),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('event_id', sa.String(length=100), nullable=True),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('campaign_id', name=op.f('pk_linked_campaign'))
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('linked_campaign')
    op.drop_table('event_consumer')
