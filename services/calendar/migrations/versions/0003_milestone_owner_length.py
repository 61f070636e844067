"""milestone owner holds what the API accepts (200 characters, NAME_LENGTH)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 21:00:00

The API took owners of up to 200 characters into a 100-character column: PostgreSQL refused
the longer ones with a 500 (issue 12, fault 5), SQLite kept them.
"""
from typing import Sequence, Union

from alembic import op
import sqlmodel


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('milestone', schema=None) as batch_op:
        batch_op.alter_column('owner',
                              existing_type=sqlmodel.sql.sqltypes.AutoString(length=100),
                              type_=sqlmodel.sql.sqltypes.AutoString(length=200),
                              existing_nullable=True)


def downgrade() -> None:
    """Downgrade schema (owners longer than 100 characters must be shortened first)."""
    with op.batch_alter_table('milestone', schema=None) as batch_op:
        batch_op.alter_column('owner',
                              existing_type=sqlmodel.sql.sqltypes.AutoString(length=200),
                              type_=sqlmodel.sql.sqltypes.AutoString(length=100),
                              existing_nullable=True)
