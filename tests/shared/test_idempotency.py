import threading

import pytest
from sqlalchemy import Column, Integer, String, Table, func, insert, select
from sqlmodel import Session

from shared.db import create_db_engine, service_registry, write_engine
from shared.errors import UnprocessableContent
from shared.idempotency import fingerprint, idempotency_table, run_once
from shared.settings import DatabaseSettings

metadata = service_registry().metadata
records = idempotency_table(metadata)
things = Table("thing", metadata, Column("id", Integer, primary_key=True),
               Column("name", String(50)))


@pytest.fixture
def engine(database_url):
    engine = create_db_engine(DatabaseSettings(database_url=database_url, port=1))
    metadata.create_all(engine)
    yield write_engine(engine)
    engine.dispose()


def create_thing(session: Session, name: str):
    def create():
        new_id = session.execute(insert(things).values(name=name)).inserted_primary_key[0]
        return 201, {"id": new_id, "name": name}
    return create


def count_things(engine) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(things)).scalar_one()


def test_a_replay_returns_the_first_response_and_creates_nothing(engine):
    fp = fingerprint("POST", "/things", {"name": "a"})
    with Session(engine) as session:
        first = run_once(session, records, principal="p", key="k1", fingerprint=fp,
                         create=create_thing(session, "a"))
    with Session(engine) as session:
        again = run_once(session, records, principal="p", key="k1", fingerprint=fp,
                         create=create_thing(session, "a"))
    assert (first.replayed, again.replayed) == (False, True)
    assert again.body == first.body and again.status_code == 201
    assert count_things(engine) == 1


def test_same_key_with_a_different_body_is_a_422(engine):
    with Session(engine) as session:
        run_once(session, records, principal="p", key="k", create=create_thing(session, "a"),
                 fingerprint=fingerprint("POST", "/things", {"name": "a"}))
    with Session(engine) as session, pytest.raises(UnprocessableContent, match="different"):
        run_once(session, records, principal="p", key="k", create=create_thing(session, "b"),
                 fingerprint=fingerprint("POST", "/things", {"name": "b"}))
    assert count_things(engine) == 1


def test_keys_are_scoped_per_caller(engine):
    fp = fingerprint("POST", "/things", {"name": "a"})
    for principal in ("p1", "p2"):
        with Session(engine) as session:
            run_once(session, records, principal=principal, key="k", fingerprint=fp,
                     create=create_thing(session, "a"))
    assert count_things(engine) == 2


def test_concurrent_replays_create_exactly_once(engine):
    fp = fingerprint("POST", "/things", {"name": "a"})
    barrier, results, errors = threading.Barrier(8), [], []

    def worker():
        try:
            with Session(engine) as session:
                barrier.wait()
                results.append(run_once(session, records, principal="p", key="race",
                                        fingerprint=fp, create=create_thing(session, "a")))
        except Exception as error:  # collected, so the assertion shows it
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count_things(engine) == 1
    assert len({r.body["id"] for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
