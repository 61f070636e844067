"""principal names

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 22:20:00.000000

Issue 15: API keys carry a person's or system's name, signed into the internal credential;
the budget keeps it next to each principal it shows (audit entries, reserve entries, plans,
pending actions). Nullable: rows from before names, services and nameless keys have none.
Plain ADD COLUMN, never a batch copy, so the append-only tables' triggers stay as they are.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = {
    'audit_entry': ('principal_name',),
    'reserve_entry': ('author_name', 'confirmed_by_name'),
    'plan': ('created_by_name', 'approved_by_name'),
    'pending_action': ('requested_by_name', 'decided_by_name'),
}


def upgrade() -> None:
    """Upgrade schema."""
    for table, columns in COLUMNS.items():
        for column in columns:
            op.add_column(table, sa.Column(column, sa.String(length=200), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    for table, columns in COLUMNS.items():
        for column in reversed(columns):
            op.drop_column(table, column)
