"""principal names

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 22:20:00.000000

Issue 15: API keys carry a person's or system's name, signed into the internal credential;
the planner keeps it next to each schedule's maker. Nullable: schedules from before names,
the automatic re-planner and nameless keys have none.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('schedule', sa.Column('created_by_name', sa.String(length=200), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('schedule', 'created_by_name')
