import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Field, Session, SQLModel, create_engine, select

from shared.db import service_registry
from shared.errors import UnprocessableContent, install_error_handlers
from shared.pagination import CursorQuery, LimitQuery, Page, paginate


class PagedModel(SQLModel, registry=service_registry()):
    pass


class Row(PagedModel, table=True):
    id: str = Field(primary_key=True)
    group: int


@pytest.fixture
def engine(database_url):
    engine = create_engine(database_url)
    PagedModel.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(Row(id=f"r{i:03d}", group=i % 3) for i in range(25))
        session.commit()
    yield engine
    engine.dispose()


def test_pages_cover_every_row_once_in_order(engine):
    seen, cursor = [], None
    with Session(engine) as session:
        while True:
            rows, cursor = paginate(session, select(Row).where(Row.group != 1),
                                    order_by=[Row.id], limit=4, cursor=cursor)
            seen.extend(r.id for r in rows)
            if cursor is None:
                break
    assert seen == [f"r{i:03d}" for i in range(25) if i % 3 != 1]


def test_pages_stay_stable_when_rows_are_inserted_before_the_cursor(engine):
    with Session(engine) as session:
        first, cursor = paginate(session, select(Row), order_by=[Row.id], limit=5, cursor=None)
        session.add(Row(id="a-new-first-row", group=0))
        session.commit()
        second, _ = paginate(session, select(Row), order_by=[Row.id], limit=5, cursor=cursor)
    assert [r.id for r in second] == [f"r{i:03d}" for i in range(5, 10)]


def test_multi_column_keys_page_through_ties(engine):
    with Session(engine) as session:
        seen, cursor = [], None
        while True:
            rows, cursor = paginate(session, select(Row), order_by=[Row.group, Row.id],
                                    limit=7, cursor=cursor)
            seen.extend((r.group, r.id) for r in rows)
            if cursor is None:
                break
    assert seen == sorted((i % 3, f"r{i:03d}") for i in range(25))


@pytest.mark.parametrize("cursor", ["garbage!", "WzFd", "WyJhIiwiYiJd", "eyJhIjoxfQ"])
# "[1]" has the wrong type for a string id, '["a","b"]' too many values, '{"a":1}' no list.
def test_a_foreign_cursor_is_a_422(engine, cursor):
    with Session(engine) as session, pytest.raises(UnprocessableContent, match="first page"):
        paginate(session, select(Row), order_by=[Row.id], limit=5, cursor=cursor)


def test_limit_and_cursor_query_parameters_are_validated():
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/rows")
    def read_rows(limit: LimitQuery = 50, cursor: CursorQuery = None) -> Page[str]:
        return Page(items=[str(limit)], next_cursor=cursor)

    client = TestClient(app)
    assert client.get("/rows?limit=2&cursor=abc").json() == {"items": ["2"], "next_cursor": "abc"}
    assert client.get("/rows?limit=0").status_code == 422
    assert client.get("/rows?limit=501").json()["errors"][0]["field"] == "limit"
