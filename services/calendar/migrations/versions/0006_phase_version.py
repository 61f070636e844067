"""phase version

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 21:00:12.104211

A phase is edited in place (PATCH with If-Match, issue 14), so it carries its own version;
existing phases start at 1.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel  # noqa: F401 (autogenerate writes sqlmodel column types)


# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('phase', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False,
                                      server_default='1'))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('phase', schema=None) as batch_op:
        batch_op.drop_column('version')
