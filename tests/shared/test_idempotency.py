import threading

import pytest
from sqlalchemy import Column, Integer, String, Table, func, insert, select
from sqlmodel import Session

from shared.db import create_db_engine, service_registry, write_engine
from shared.errors import UnprocessableContent
from shared.idempotency import Idempotency, Replay, fingerprint, idempotency_table
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


def create_thing(session: Session, idempotency: Idempotency, name: str) -> dict:
    """A use case as every service writes one: check, stage, record, commit once."""
    idempotency.check(session)
    new_id = session.execute(insert(things).values(name=name)).inserted_primary_key[0]
    answer = {"id": new_id, "name": name}
    idempotency.record(session, answer)
    session.commit()
    return answer


def keyed(key: str | None, name: str, principal: str = "p") -> Idempotency:
    return Idempotency(table=records, principal=principal, key=key,
                       fingerprint=fingerprint("POST", "/things", {"name": name}))


def count_things(engine) -> int:
    with Session(engine) as session:
        return session.execute(select(func.count()).select_from(things)).scalar_one()


def test_a_replay_returns_the_first_response_and_creates_nothing(engine):
    with Session(engine) as session:
        first = create_thing(session, keyed("k1", "a"), "a")
    with Session(engine) as session, pytest.raises(Replay) as replay:
        create_thing(session, keyed("k1", "a"), "a")
    assert replay.value.body == first and replay.value.status_code == 201
    assert count_things(engine) == 1


def test_without_a_key_every_request_creates(engine):
    for _ in range(2):
        with Session(engine) as session:
            create_thing(session, keyed(None, "a"), "a")
    assert count_things(engine) == 2


def test_same_key_with_a_different_body_is_a_422(engine):
    with Session(engine) as session:
        create_thing(session, keyed("k", "a"), "a")
    with Session(engine) as session, pytest.raises(UnprocessableContent, match="different"):
        create_thing(session, keyed("k", "b"), "b")
    assert count_things(engine) == 1


def test_keys_are_scoped_per_caller(engine):
    for principal in ("p1", "p2"):
        with Session(engine) as session:
            create_thing(session, keyed("k", "a", principal), "a")
    assert count_things(engine) == 2


def test_concurrent_replays_create_exactly_once(engine):
    barrier, created, replays, errors = threading.Barrier(8), [], [], []

    def worker():
        try:
            with Session(engine) as session:
                barrier.wait()
                created.append(create_thing(session, keyed("race", "a"), "a"))
        except Replay as replay:
            replays.append(replay.body)
        except Exception as error:  # collected, so the assertion shows it
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count_things(engine) == 1
    assert len(created) == 1 and replays == created * 7
