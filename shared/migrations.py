"""Alembic, driven from code: each service keeps its own migrations folder and metadata."""
from pathlib import Path
from typing import Any, Literal

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, TypeDecorator, create_engine, pool


def alembic_config(migrations: Path, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    # ConfigParser treats % as interpolation; URLs carry percent-encoded passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(migrations: Path, database_url: str) -> None:
    """Migrate the database to the newest revision."""
    command.upgrade(alembic_config(migrations, database_url), "head")


def check(migrations: Path, database_url: str) -> None:
    """Raise if the models differ from what the migrations build (`alembic check`)."""
    command.check(alembic_config(migrations, database_url))


def heads(migrations: Path) -> set[str]:
    """Return the newest revision(s) in a migrations folder."""
    return set(ScriptDirectory.from_config(alembic_config(migrations, "")).get_heads())


def is_current(engine: Engine, newest: set[str]) -> bool:
    """Tell whether the database is at the `newest` revisions."""
    with engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads()) == newest


def _render_item(kind: str, item: Any, _context: Any) -> str | Literal[False]:
    # Migrations must not import application code: a TypeDecorator is written as its
    # SQLAlchemy column type (e.g. shared.db.Instant as sa.DateTime(timezone=True)).
    if kind == "type" and isinstance(item, TypeDecorator):
        return f"sa.{item.impl!r}"
    return False


def run_migrations(metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py`."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None, "the service's migrations are always run with its database URL"
    # Batch mode lets the same migration ALTER tables on SQLite and PostgreSQL alike.
    options: dict[str, Any] = {"target_metadata": metadata, "render_as_batch": True,
                               "compare_type": True, "render_item": _render_item}
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
