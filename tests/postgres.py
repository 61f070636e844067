"""A throwaway PostgreSQL server for the test run: initdb + pg_ctl on a free loopback port."""
import glob
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg


def find_bin_dir() -> Path | None:
    if initdb := shutil.which("initdb"):
        return Path(initdb).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


# Servers the tests start listen below Linux's ephemeral range (32768-60999): a port there can
# already be the local end of one of this busy process's client connections (database pools,
# HTTP clients), and a server cannot bind it then.
SERVER_PORTS = range(20000, 32000)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(size: int = 1) -> int:
    """A port (the first of `size` consecutive ones) that nothing holds right now."""
    for _ in range(200):
        base = random.randrange(SERVER_PORTS.start, SERVER_PORTS.stop - size)
        if all(_bindable(base + i) for i in range(size)):
            return base
    raise RuntimeError("no free ports")


class PostgresServer:
    """Start with `start()`; `url(db)` gives a SQLAlchemy URL; `stop()` removes everything."""

    def __init__(self):
        self.bin_dir = find_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="marketplan-pg-"))
        self.port = free_port()
        # PostgreSQL refuses to run as root; CI runs as root, so use the `postgres` account.
        self.run_as = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        """Raise RuntimeError with the reason if the server cannot start."""
        if self.bin_dir is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb) found")
        if self.run_as:
            try:
                user = pwd.getpwnam(self.run_as)
            except KeyError:
                raise RuntimeError("running as root and no 'postgres' account exists") from None
            os.chown(self.root, user.pw_uid, user.pw_gid)
        data = self.root / "data"
        steps = [
            ("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync"),
            ("pg_ctl", "-D", str(data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
             "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.root} -c fsync=off "
                   # A throwaway server: a commit need not wait for its WAL write, nor a
                   # checkpoint (one per CREATE DATABASE) for whole pages. Only a crash of
                   # the server itself could lose a commit; the tests kill clients, never it.
                   "-c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200", "start"),
        ]
        for step in steps:
            result = self._run(*step)
            if result.returncode != 0:
                log = self.root / "server.log"
                raise RuntimeError(f"{step[0]} failed: {result.stderr.strip()} "
                                   f"{log.read_text() if log.exists() else ''}".strip())

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database: empty, or a copy of the database `template` (which must have no
        session open; PostgreSQL waits up to 5 s for a closing one to end)."""
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres",
                             autocommit=True) as connection:
            # PostgreSQL 15's default copies the template through the WAL; a file copy is
            # about twice as fast (57-87 ms against 105-142), and the suite makes ~80.
            strategy = " STRATEGY = FILE_COPY" if connection.info.server_version >= 150000 else ""
            source = f' TEMPLATE "{template}"' if template else ""
            connection.execute(f'CREATE DATABASE "{name}"{source}{strategy}')
        return self.url(name)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
