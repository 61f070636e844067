"""Database engine and sessions: SQLite (default, WAL) or PostgreSQL, chosen by URL."""
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import DateTime, Engine, MetaData, TypeDecorator, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import registry
from sqlmodel import Session

from shared.settings import DatabaseSettings

# Stable constraint names, so that Alembic autogenerate and `alembic check` are deterministic
# on both SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


WRITE_OPTION = "marketplan_writes"


class Instant(TypeDecorator):
    """A point in time, read back timezone-aware in UTC on every backend (SQLite keeps no
    offset, PostgreSQL answers in the session's time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("an instant needs a time zone; use datetime.now(UTC)")
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def service_registry() -> registry:
    """Return a registry with its own MetaData, so each service migrates only its own tables."""
    return registry(metadata=MetaData(naming_convention=NAMING_CONVENTION))


def create_db_engine(settings: DatabaseSettings) -> Engine:
    """Create the engine for `settings.database_url`, tuned for that backend."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=settings.db_pool_size)
    engine = create_engine(
        url, connect_args={"timeout": settings.sqlite_busy_timeout, "check_same_thread": False}
    )
    busy_ms = int(settings.sqlite_busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record):
        # Take over transaction control from pysqlite (SQLAlchemy's documented recipe) so that
        # every transaction starts with BEGIN IMMEDIATE below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection):
        # A deferred transaction that reads and then writes fails at once with "database is
        # locked" when another writer got in between; writers take the lock up front
        # (BEGIN IMMEDIATE) and so queue for up to busy_timeout instead, and no update is
        # lost. Readers stay deferred: in WAL mode they never wait for anyone.
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def backend_name(engine: Engine) -> str:
    """Return `sqlite` or `postgresql`."""
    return engine.url.get_backend_name()


def check_database(engine: Engine) -> None:
    """Raise if the database cannot answer a trivial query."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def write_engine(engine: Engine) -> Engine:
    """The same engine, for transactions that will write (SQLite: BEGIN IMMEDIATE)."""
    return engine.execution_options(**{WRITE_OPTION: True})


def get_session(request: Request) -> Iterator[Session]:
    """Yield a session for reading, closed after the request."""
    with Session(request.app.state.engine) as session:
        yield session


def get_write_session(request: Request) -> Iterator[Session]:
    """Yield a session for a request that writes, closed after the request."""
    with Session(write_engine(request.app.state.engine)) as session:
        yield session


# "function" scope: the session closes as soon as the route returns, before the answer is sent,
# so a transaction (on SQLite, the write lock) is never held while a client reads its answer.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(get_write_session, scope="function")]
