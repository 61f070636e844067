"""The `Prefer` request header (RFC 7240), as far as the API reads it: `respond-async`."""
import re
from collections.abc import Iterable

RESPOND_ASYNC = "respond-async"
# RFC 7240: `Prefer` is a comma-separated list (and may repeat) of `token [= value] *(; param)`;
# a comma inside a quoted value does not separate preferences.
_PREFERENCE = re.compile(r'\s*([^=;,\s]+)(?:[^,"]|"(?:[^"\\]|\\.)*")*')


def prefers_async(values: Iterable[str]) -> bool:
    """Whether `Prefer` header values ask for `respond-async` (tokens are case-insensitive)."""
    return any(match.group(1).lower() == RESPOND_ASYNC
               for value in values for match in _PREFERENCE.finditer(value))
