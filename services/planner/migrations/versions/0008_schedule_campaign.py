"""schedule campaign

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 02:41:23.874368

Issue 17: a campaign's overview parsed the newest schedule's whole result (3,000 assignments
on a department-year) to find the campaign's few tasks. Each stored schedule's assignments and
late entries are kept split by campaign too, one row per (schedule, campaign). The existing
schedules are split here, a task's campaign taken from the task table (the campaign a task has
now is the one an overview of it asks for; a task deleted since is in no overview).
"""
from typing import Any, Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    parts = op.create_table('schedule_campaign',
    sa.Column('schedule_id', sa.String(length=100), nullable=False),
    sa.Column('campaign_id', sa.String(length=100), nullable=False),
    sa.Column('assignments', sa.JSON(), nullable=False),
    sa.Column('late', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['schedule_id'], ['schedule.id'], name=op.f('fk_schedule_campaign_schedule_id_schedule')),
    sa.PrimaryKeyConstraint('schedule_id', 'campaign_id', name=op.f('pk_schedule_campaign'))
    )
    with op.batch_alter_table('schedule_campaign', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_campaign_campaign_id'), ['campaign_id'], unique=False)
    _split_stored_schedules(parts)


def _split_stored_schedules(parts: sa.Table) -> None:
    # The tables as this revision knows them: migrations never import the application.
    schedule = sa.table('schedule', sa.column('id', sa.String), sa.column('result', sa.JSON))
    task = sa.table('task', sa.column('id', sa.String), sa.column('campaign_id', sa.String))
    connection = op.get_bind()
    campaign_of = {task_id: campaign_id for task_id, campaign_id in connection.execute(
        sa.select(task.c.id, task.c.campaign_id).where(task.c.campaign_id.is_not(None)))}
    schedule_ids = connection.execute(sa.select(schedule.c.id)).scalars().all()
    for schedule_id in schedule_ids:   # one result in memory at a time: each can be megabytes
        result = connection.execute(sa.select(schedule.c.result)
                                    .where(schedule.c.id == schedule_id)).scalar_one()
        split: dict[str, dict[str, list[Any]]] = {}
        for key in ('assignments', 'late'):
            for item in result[key]:
                if (campaign_id := campaign_of.get(item['task'])) is not None:
                    split.setdefault(campaign_id, {'assignments': [], 'late': []})[key].append(item)
        if split:
            connection.execute(parts.insert(), [
                {'schedule_id': schedule_id, 'campaign_id': campaign_id} | lists
                for campaign_id, lists in split.items()])


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('schedule_campaign', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedule_campaign_campaign_id'))

    op.drop_table('schedule_campaign')
