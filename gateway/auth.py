"""API keys, stored hashed in a JSON file (what each role may do: gateway/policy.py)."""
import fcntl
import hashlib
import json
import os
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from shared.errors import Unauthorized
from shared.internal_auth import ROLES, Caller

KEY_PREFIX = "mp_"
# Calendar clients cannot send an API key: a feed URL carries its own revocable token,
# which the calendar service checks.
FEED_PATH = re.compile(r"/api/v1/calendar/feeds/[^/]+\.ics")
FEED_CALLER = Caller("feed-token", "viewer")
# The name is shown wherever the key's caller is (approvers, authors, audit entries) and kept
# in the services' `*_name` columns of the same length.
NAME_MAX_LENGTH = 200


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def check_name(name: str) -> str:
    """Return a key's name without surrounding blanks, or raise ValueError saying what is wrong."""
    name = name.strip()
    if not 1 <= len(name) <= NAME_MAX_LENGTH:
        raise ValueError(f"a key's name must be 1 to {NAME_MAX_LENGTH} characters long")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise ValueError("a key's name may not contain control characters (tabs, newlines …)")
    return name


def display_name(record: dict) -> str:
    """The name a key's caller goes by: keys made before names existed go by their label,
    else their id."""
    return record.get("name") or record.get("label") or record["id"]


def _caller(record: dict) -> Caller:
    return Caller(f"key:{record['id']}", record["role"], display_name(record))


def hash_key(key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough; a slow KDF would only slow
    # every request down.
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """The API keys file; the gateway re-reads it when it changes, so new keys work at once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._callers: dict[str, Caller] = {}

    def _records(self) -> list[dict]:
        try:
            return json.loads(self.path.read_text())["keys"]
        except FileNotFoundError:
            return []

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._callers = {r["hash"]: _caller(r) for r in self._records()}
            self._stamp = stamp

    def authenticate(self, authorization: str | None) -> Caller:
        """Return the caller of a `Bearer <key>` header, or raise Unauthorized."""
        headers = {"WWW-Authenticate": 'Bearer realm="marketplan"'}
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("Send an API key as `Authorization: Bearer <key>`; an admin "
                               "creates one with `marketplan keys create --role <role>`.",
                               headers=headers)
        self._refresh()
        caller = self._callers.get(hash_key(key.strip()))
        if caller is None:
            raise Unauthorized("This API key is unknown or revoked; ask an admin for a valid "
                               "key.", headers=headers)
        return caller

    def _write(self, records: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")
        with os.fdopen(fd, "w") as out:
            json.dump({"keys": records}, out, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)  # atomic: the gateway never reads half a file

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def create(self, role: str, *, name: str | None = None, label: str = "",
               key: str | None = None) -> tuple[dict, str]:
        """Store a key for `role` and its holder's `name` (a given `key`, or a new random one);
        return record and key. `marketplan keys create` requires the name."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
        if name is not None:
            name = check_name(name)
        key = key or generate_key()
        if len(key) < 20:
            raise ValueError("an API key must be at least 20 characters long")
        with self._locked():
            records = self._records()
            digest = hash_key(key)
            existing = next((r for r in records if r["hash"] == digest), None)
            if existing is not None:
                if existing["role"] != role:
                    raise ValueError(f"that key already exists with role {existing['role']!r}")
                return existing, key
            record = {"id": "key_" + secrets.token_hex(6), "role": role, "name": name,
                      "label": label, "hash": digest,
                      "created_at": datetime.now(UTC).isoformat()}
            self._write([*records, record])
        return record, key

    def list(self) -> list[dict]:
        """The keys without their hashes, each with the name its caller goes by."""
        return [{k: v for k, v in r.items() if k != "hash"} | {"name": display_name(r)}
                for r in self._records()]

    def revoke(self, key_id: str) -> bool:
        with self._locked():
            records = self._records()
            kept = [r for r in records if r["id"] != key_id]
            if len(kept) == len(records):
                return False
            self._write(kept)
        return True


def feed_caller(method: str, path: str, authorization: str | None) -> Caller | None:
    """The caller of a feed request without an API key, else None."""
    if authorization is None and method in ("GET", "HEAD") and FEED_PATH.fullmatch(path):
        return FEED_CALLER
    return None

