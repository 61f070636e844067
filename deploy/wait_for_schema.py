"""Wait until a service's database is at its newest migration, then exit 0 (exit 1 on timeout).

The init container of every service pod in `deploy/k8s/`: the migration Job (`marketplan
migrate`) and the Deployments are applied together, and a service that started on an old
schema would answer 500s while looking ready (its /readyz only asks whether the database
answers). Run with the service's own settings: `python deploy/wait_for_schema.py budget`.
"""
import argparse
import sys
import time

from sqlalchemy.exc import SQLAlchemyError

from marketplan.processes import SERVICES
from shared.db import create_db_engine
from shared.migrations import heads, is_current
from shared.settings import DatabaseSettings


def wait_for_schema(name: str, *, timeout: float, interval: float) -> bool:
    """Poll until service `name`'s database has its newest revisions; False past `timeout`."""
    service = next(s for s in SERVICES if s.name == name)
    settings = service.settings()
    assert isinstance(settings, DatabaseSettings)
    newest = heads(service.migrations)
    engine = create_db_engine(settings)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if is_current(engine, newest):
                    return True
            except SQLAlchemyError:
                pass  # the database is not up yet, or has no alembic_version table so far
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=[s.name for s in SERVICES])
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between checks")
    args = parser.parse_args(argv)
    if wait_for_schema(args.service, timeout=args.timeout, interval=args.interval):
        print(f"{args.service}: schema is current")
        return 0
    print(f"{args.service}: schema not current after {args.timeout:g} s; did the migration "
          "Job (marketplan migrate) run?", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
