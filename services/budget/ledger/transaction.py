"""The rule for a write use case's transaction, beyond "commit once": a failure rolls back at
once, inside the use case.

Left to the session's close, a refused write (a 409, a 422) would keep its transaction, and on
SQLite the database's write lock, until the response is sent; meanwhile the idempotency
dependency of the next request waits for that lock on the event loop, which the close needs
to run: every writer then stalls for the busy timeout."""
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from sqlmodel import Session

P = ParamSpec("P")
T = TypeVar("T")


def rolls_back(use_case: Callable[P, T]) -> Callable[P, T]:
    """Roll back the use case's `session` (a keyword argument) when it raises."""
    @wraps(use_case)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return use_case(*args, **kwargs)
        except BaseException:
            session = kwargs["session"]
            assert isinstance(session, Session)
            session.rollback()
            raise
    return run
