"""ledger revision

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 05:40:00.000000

Issue 17: each process keeps a budget's variance and review (`services.budget.ledger.kept`)
under the exact state they were read from. `budget.revision` moves in every transaction that
changes what they read besides the budget's own row: its channels, plan lines, reserve
entries and actuals. Triggers move it, so every writer (any process, any code path) does it
in the very transaction of its change, and a reader that sees a revision sees every change
made before it.

On PostgreSQL a transaction moves it once: its first row of a budget does it and notes the
budget in a setting local to the transaction (`marketplan.revised_budget`), so the others skip
the update. Each row of a 2,650-line plan or a year of actuals would otherwise add one more
version of the budget row for the next update to walk past (and cost ~100 µs). SQLite updates
the row in place, once per row.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The tables that carry their budget's id, and plan_line, whose plan carries it.
BY_BUDGET = ("channel", "reserve_entry", "actual")
BUDGET_OF = {table: "{row}.budget_id" for table in BY_BUDGET} | {
    "plan_line": "(SELECT budget_id FROM plan WHERE id = {row}.plan_id)"}
EVENTS = ("INSERT", "UPDATE", "DELETE")


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('budget', sa.Column('revision', sa.BigInteger(), server_default='0',
                                      nullable=False))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""CREATE FUNCTION marketplan_revise_budget(budget_id text) RETURNS void
                      LANGUAGE plpgsql AS $$ BEGIN
                        IF current_setting('marketplan.revised_budget', true)
                           IS DISTINCT FROM budget_id THEN
                          UPDATE budget SET revision = revision + 1 WHERE id = budget_id;
                          PERFORM set_config('marketplan.revised_budget', budget_id, true);
                        END IF;
                      END $$""")
        for table, budget in BUDGET_OF.items():
            op.execute(f"""CREATE FUNCTION marketplan_{table}_revises() RETURNS trigger
                           LANGUAGE plpgsql AS $$ BEGIN
                             IF TG_OP <> 'INSERT' THEN
                               PERFORM marketplan_revise_budget({budget.format(row='OLD')});
                             END IF;
                             IF TG_OP <> 'DELETE' THEN
                               PERFORM marketplan_revise_budget({budget.format(row='NEW')});
                             END IF;
                             RETURN NULL;
                           END $$""")
            op.execute(f"CREATE TRIGGER {table}_revises AFTER INSERT OR UPDATE OR DELETE ON "
                       f"{table} FOR EACH ROW EXECUTE FUNCTION marketplan_{table}_revises()")
        return
    for table, budget in BUDGET_OF.items():
        for event in EVENTS:
            rows = {"INSERT": ("NEW",), "UPDATE": ("OLD", "NEW"), "DELETE": ("OLD",)}[event]
            budgets = ", ".join(budget.format(row=row) for row in rows)
            op.execute(f"CREATE TRIGGER {table}_revises_{event.lower()} AFTER {event} ON {table} "
                       f"BEGIN UPDATE budget SET revision = revision + 1 "
                       f"WHERE id IN ({budgets}); END")


def downgrade() -> None:
    """Downgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        for table in BUDGET_OF:
            op.execute(f"DROP TRIGGER {table}_revises ON {table}")
            op.execute(f"DROP FUNCTION marketplan_{table}_revises()")
        op.execute("DROP FUNCTION marketplan_revise_budget(text)")
    else:
        for table in BUDGET_OF:
            for event in EVENTS:
                op.execute(f"DROP TRIGGER {table}_revises_{event.lower()}")
    with op.batch_alter_table('budget', schema=None) as batch_op:
        batch_op.drop_column('revision')
