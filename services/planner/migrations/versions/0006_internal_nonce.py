"""internal nonce

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 21:02:10.118204

The nonces of internal credentials already used (issue 12, fault 14): with this table the
planner refuses a replayed credential in every one of its processes.
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
    op.create_table('internal_nonce',
    sa.Column('nonce', sa.String(length=32), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('nonce', name=op.f('pk_internal_nonce'))
    )
    with op.batch_alter_table('internal_nonce', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_internal_nonce_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('internal_nonce', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_internal_nonce_expires_at'))
    op.drop_table('internal_nonce')
