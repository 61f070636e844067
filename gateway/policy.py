"""Who may do what: the one role policy of the API, checked at the gateway.

Services check the same rules on their own routes (`require_roles`), so a call that passes
here is never refused there for its role. First matching rule wins:

- GET, HEAD, OPTIONS on every `/api/v1/…` path: admin, planner, finance, viewer.
- POST, PUT, PATCH, DELETE on `/api/v1/budget/budgets/{id}/actuals…`: admin, finance.
- POST on the what-ifs that store nothing (`/api/v1/budget/optimize`,
  `…/budgets/{id}/campaign-funding/optimize`) and on the second key of four eyes
  (`…/budgets/{id}/pending/{pid}/confirm`, `/cancel`), and cancelling a budget job (the
  service lets each role see and cancel only the kinds of job it could start): admin,
  planner, finance.
- POST, PUT, PATCH, DELETE on every other `/api/v1/…` path: admin, planner.
"""
import re
from dataclasses import dataclass

from shared.errors import Forbidden
from shared.internal_auth import ROLES, Caller

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Rule:
    methods: frozenset[str]
    path: re.Pattern[str]
    roles: tuple[str, ...]


POLICY = (
    Rule(READ_METHODS, re.compile(r"/api/v1/.*"), ROLES),
    # Actuals come from the finance systems; planners plan, they do not book spend.
    Rule(WRITE_METHODS, re.compile(r"/api/v1/budget/budgets/[^/]+/actuals(/.*)?"),
         ("admin", "finance")),
    Rule(frozenset({"POST"}), re.compile(r"/api/v1/budget/(optimize"
                                         r"|budgets/[^/]+/campaign-funding/optimize"
                                         r"|budgets/[^/]+/pending/[^/]+/(confirm|cancel)"
                                         r"|jobs/[^/]+/cancel)"),
         ("admin", "planner", "finance")),
    Rule(WRITE_METHODS, re.compile(r"/api/v1/.*"), ("admin", "planner")),
)

# Requests that run a solver (optimizer or scheduler): limited per key (gateway/limits.py).
SOLVER_PATHS = re.compile(r"/api/v1/(budget/optimize|budget/budgets/[^/]+/plans"
                          r"|planner/solve|planner/schedules(/[^/]+/replan)?)")


def authorize(caller: Caller, method: str, path: str) -> None:
    """Raise Forbidden unless the caller's role may send `method` to `path`."""
    rule = next((r for r in POLICY if method in r.methods and r.path.fullmatch(path)), None)
    if rule is None:
        raise Forbidden(f"{method} is not allowed on {path} for any role.")
    if caller.role not in rule.roles:
        raise Forbidden(f"Role {caller.role!r} may not {method} {path}; it needs one of: "
                        f"{', '.join(rule.roles)}. Ask an admin for a key with such a role.")


def runs_solver(method: str, path: str) -> bool:
    return method == "POST" and SOLVER_PATHS.fullmatch(path) is not None
