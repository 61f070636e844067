"""The `marketplan` command: up, serve, migrate, check, keys."""
import argparse
import os
import sys
from pathlib import Path

import uvicorn
from dotenv import load_dotenv

from gateway.auth import KeyStore, display_name
from gateway.config import GatewaySettings
from marketplan.processes import PROCESSES, SERVICES
from marketplan.up import die_with_supervisor, up
from shared import migrations
from shared.internal_auth import ROLES
from shared.requests import logging_config

# On SIGINT/SIGTERM, requests still running get this long before they are cancelled and the
# lifespan closes (solver workers killed, database pools disposed): a stop takes ~1 s.
GRACEFUL_SHUTDOWN_SECONDS = 1


def _serve(args: argparse.Namespace) -> int:
    die_with_supervisor()
    process = PROCESSES[args.name]
    if args.port:
        os.environ[process.env_prefix + "PORT"] = str(args.port)
    settings = process.settings()
    uvicorn.run(process.factory, factory=True, host=settings.host, port=settings.port,
                loop="uvloop", http="httptools", proxy_headers=False,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
                log_config=logging_config(process.name, settings.log_level))
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    for service in SERVICES:
        migrations.upgrade(service.migrations, service.database_url())
        print(f"{service.name}: migrated")
    return 0


def _check(_args: argparse.Namespace) -> int:
    for service in SERVICES:
        migrations.check(service.migrations, service.database_url())
        print(f"{service.name}: models match the migrations")
    return 0


def _keys(args: argparse.Namespace) -> int:
    keys = KeyStore(GatewaySettings().keys_file)
    if args.action == "create":
        try:
            record, key = keys.create(args.role, name=args.name, label=args.label, key=args.key)
        except ValueError as error:
            print(f"marketplan keys create: {error}", file=sys.stderr)
            return 2
        print(key)
        print(f"({record['role']} key {record['id']} of {display_name(record)}; it is shown only now)",
              file=sys.stderr)
    elif args.action == "list":
        for record in keys.list():
            print(f"{record['id']}  {record['role']:<8} {record['created_at']}  {record['name']}"
                  + (f"  ({record['label']})" if record["label"] else ""))
    elif not keys.revoke(args.id):
        print(f"marketplan keys revoke: no key {args.id}", file=sys.stderr)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="marketplan", description=__doc__)
    root.add_argument("--env-file", type=Path,
                      help="read settings from this file (e.g. var/up.env) before the environment")
    commands = root.add_subparsers(dest="command", required=True)

    start = commands.add_parser("up", help="migrate and run (and restart) all four processes "
                                          "until Ctrl-C")
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--port", type=int, default=8000,
                       help="gateway port; the services take the next ones (3 × replicas)")
    start.add_argument("--replicas", type=int, default=1, choices=range(1, 9), metavar="N",
                       help="processes per service, 1-8 (more than 1 needs PostgreSQL: "
                            "set CALENDAR_, BUDGET_ and PLANNER_DATABASE_URL)")
    start.add_argument("--var-dir", type=Path,
                       default=Path(os.environ.get("MARKETPLAN_VAR_DIR", "var")),
                       help="where SQLite files, keys and the run settings go "
                            "(default: $MARKETPLAN_VAR_DIR or ./var)")
    start.set_defaults(run=lambda a: up(host=a.host, port=a.port, var_dir=a.var_dir,
                                      replicas=a.replicas))

    serve = commands.add_parser("serve", help="run one process")
    serve.add_argument("name", choices=sorted(PROCESSES))
    serve.add_argument("--port", type=int)
    serve.add_argument("--env-file", type=Path, default=argparse.SUPPRESS)
    serve.set_defaults(run=_serve)

    commands.add_parser("migrate", help="migrate every service's database").set_defaults(
        run=_migrate)
    commands.add_parser("check", help="fail if models and migrations differ").set_defaults(
        run=_check)

    keys = commands.add_parser("keys", help="manage gateway API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="print a new key for a role")
    create.add_argument("--role", choices=ROLES, required=True)
    # Not yet required: the e2e tests and the Kubernetes gateway's start command still create
    # keys without it (a warning says so).
    create.add_argument("--name", required=True,
                        help="the person's or system's name, shown wherever the key's caller "
                             "is (1–200 characters)")
    create.add_argument("--label", default="")
    create.add_argument("--key", help="store this exact key instead of a random one")
    actions.add_parser("list", help="list keys (never their secrets)")
    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id")
    keys.set_defaults(run=_keys)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.env_file:
        load_dotenv(args.env_file, override=True)
    sys.exit(args.run(args))
