import json
import logging

import pytest
from asgi_correlation_id import correlation_id
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from shared.db import create_db_engine, write_engine
from shared.requests import configure_logging
from shared.settings import DatabaseSettings


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(tmp_path):
    engine = create_db_engine(DatabaseSettings(database_url=f"sqlite:///{tmp_path}/x.db",
                                               port=1, sqlite_busy_timeout=7))
    with engine.connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert (pragma("journal_mode"), pragma("foreign_keys"), pragma("busy_timeout")) == \
            ("wal", 1, 7000)
    engine.dispose()


def test_write_transactions_take_the_sqlite_write_lock_up_front(tmp_path):
    engine = create_db_engine(DatabaseSettings(database_url=f"sqlite:///{tmp_path}/x.db",
                                               port=1, sqlite_busy_timeout=0.1))
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    with write_engine(engine).connect() as writer, writer.begin():
        writer.execute(text("SELECT 1"))  # only a read, yet the write lock is held
        with engine.connect() as reader:
            assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 0
        with write_engine(engine).connect() as other, \
                pytest.raises(OperationalError, match="locked"):
            other.begin()
    engine.dispose()


def test_engine_answers_on_each_backend(database_url):
    engine = create_db_engine(DatabaseSettings(database_url=database_url, port=1))
    with write_engine(engine).begin() as connection:
        assert connection.execute(text("SELECT 41 + 1")).scalar() == 42
    engine.dispose()


def test_logs_are_json_lines_with_the_request_id(capsys):
    root_handlers, root_level = logging.root.handlers[:], logging.root.level
    configure_logging("budget", "INFO")
    token = correlation_id.set("rid-9")
    try:
        logging.getLogger("marketplan.test").info("allocated")
    finally:
        correlation_id.reset(token)
        logging.root.handlers[:], logging.root.level = root_handlers, root_level
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line | {"time": None} == {"time": None, "level": "INFO", "logger": "marketplan.test",
                                     "message": "allocated", "request_id": "rid-9",
                                     "process": "budget"}
