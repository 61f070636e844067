"""Opaque resource ids that sort by creation time, so lists have a stable, natural order."""
import secrets
import time


def new_id(prefix: str) -> str:
    """Return e.g. `bud_018f3a2b4c5d6e7f01a2b3c4d5`: prefix, microsecond clock, 40 random bits."""
    return f"{prefix}_{time.time_ns() // 1000:014x}{secrets.token_hex(5)}"
