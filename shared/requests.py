"""Request ids and JSON logging, shared by the gateway and the services."""
import logging
import logging.config
import re

from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from fastapi import FastAPI
from pythonjsonlogger.core import RESERVED_ATTRS

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# A calendar feed URL carries its token, a bearer secret stored only as a hash: logs (access
# lines, errors) keep the path with the token replaced.
_FEED_TOKEN = re.compile(r"(/feeds/)[^/?#\s\"']+?(\.ics)?(?=[/?#\s\"']|$)")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """Replace the secrets a log line may carry (feed tokens in URLs)."""
    return _FEED_TOKEN.sub(lambda m: m.group(1) + REDACTED + (m.group(2) or ""), text)


class RedactSecrets(logging.Filter):
    """Format each record's message once with the secrets replaced, before any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/feeds/" in message:
            record.msg, record.args = redact(message), None
        return True


def is_valid_request_id(value: str) -> bool:
    """Accept a caller's id only if it is short and safe to write into logs."""
    return bool(_REQUEST_ID.fullmatch(value))


def current_request_id() -> str | None:
    return correlation_id.get()


def request_id_header() -> dict[str, str]:
    """The header that carries the current request id to another process."""
    request_id = correlation_id.get()
    return {REQUEST_ID_HEADER: request_id} if request_id else {}


def install_request_id(app: FastAPI) -> None:
    """Reuse the caller's X-Request-ID or make one; echo it on the response."""
    app.add_middleware(CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER,
                       validator=is_valid_request_id)


def logging_config(process: str, level: str) -> dict:
    """Return a dictConfig that writes one JSON object per line with the request id."""
    handler = {"class": "logging.StreamHandler", "formatter": "json",
               "filters": ["request_id", "redact"], "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "asgi_correlation_id.CorrelationIdFilter",
                                   "default_value": "-"},
                    "redact": {"()": "shared.requests.RedactSecrets"}},
        "formatters": {"json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
            "rename_fields": {"correlation_id": "request_id", "asctime": "time",
                              "levelname": "level", "name": "logger"},
            "static_fields": {"process": process},
            # uvicorn adds a terminal-coloured copy of each message; JSON has no use for it.
            "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
        }},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": ["default"], "level": level, "propagate": False},
            # httpx logs every request at INFO: twice a second per event consumer, all noise.
            "httpx": {"level": "WARNING"},
        },
    }


def configure_logging(process: str, level: str) -> None:
    logging.config.dictConfig(logging_config(process, level))
