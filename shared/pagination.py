"""Cursor (keyset) pagination: stable under inserts, no OFFSET scans."""
import base64
import json
from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Integer, Select, tuple_
from sqlmodel import Session

from shared.errors import UnprocessableContent

T = TypeVar("T")

LimitQuery = Annotated[int, Query(ge=1, le=500, description="Items per page (1-500).")]
CursorQuery = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


# SQLModel types a table's columns as their Python values (`Campaign.id: str`), so the key
# columns are taken as `Any` here; each is an InstrumentedAttribute at run time.
def _key_type(column: Any) -> type:
    return int if isinstance(column.type, Integer) else str


def encode_cursor(values: Sequence[str | int]) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, columns: Sequence[Any]) -> list[str | int]:
    """Return the key values in `cursor`, or raise a 422 that says to restart from page one."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        # A value of the wrong type would reach the database as a type error, not a 422.
        if (isinstance(values, list) and len(values) == len(columns)
                and all(type(v) is _key_type(c) for v, c in zip(values, columns))):
            return values
    except ValueError:
        pass
    raise UnprocessableContent(
        "The cursor is not one this API issued; drop `cursor` to start from the first page "
        "and follow `next_cursor` from there.",
        errors=[{"in": "query", "field": "cursor", "detail": "invalid cursor",
                 "type": "value_error"}])


def paginate(session: Session, statement: Select, *, order_by: Sequence[Any],
             limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
    """Run `statement` for one page ordered by the unique key `order_by` (str/int columns)."""
    if cursor is not None:
        statement = statement.where(tuple_(*order_by) > tuple_(*decode_cursor(cursor, order_by)))
    rows = list(session.exec(statement.order_by(*order_by).limit(limit + 1)))  # type: ignore[call-overload]
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor([getattr(last, column.key) for column in order_by])
