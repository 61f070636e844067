"""Log lines: JSON with the request id, and no feed token in clear."""
import io
import json
import logging
import logging.config

import pytest

from shared.requests import logging_config, redact

TOKEN = "Zx9-secret_feed-token"


@pytest.fixture
def logs():
    """The process's logging as `marketplan serve` configures it; yields the lines written."""
    logging.config.dictConfig(logging_config("calendar", "INFO"))
    written = io.StringIO()
    # One handler serves every logger of the config (uvicorn's included).
    logging.getLogger().handlers[0].setStream(written)
    yield lambda: [json.loads(line) for line in written.getvalue().splitlines()]
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})


def test_access_lines_carry_the_feed_path_without_its_token(logs):
    # uvicorn writes its access line with these arguments (uvicorn/protocols/http/*_impl.py).
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
        f"/api/v1/calendar/feeds/{TOKEN}.ics?alarm=1", "1.1", 200)
    (line,) = logs()
    assert TOKEN not in json.dumps(line)
    assert line["message"] == ('127.0.0.1:5000 - "GET /api/v1/calendar/feeds/[redacted].ics'
                               '?alarm=1 HTTP/1.1" 200')


def test_error_lines_are_redacted_too(logs):
    logging.getLogger("marketplan.errors").error("unhandled error on %s %s", "GET",
                                                 f"/api/v1/calendar/feeds/{TOKEN}")
    (line,) = logs()
    assert TOKEN not in json.dumps(line)
    assert line["message"].endswith("/feeds/[redacted]")


@pytest.mark.parametrize("text, expected", [
    (f"/api/v1/calendar/feeds/{TOKEN}.ics", "/api/v1/calendar/feeds/[redacted].ics"),
    (f'"/feeds/{TOKEN}.ics" 404', '"/feeds/[redacted].ics" 404'),
    ("/api/v1/calendar/feed-tokens/ft_1/revoke", "/api/v1/calendar/feed-tokens/ft_1/revoke"),
])
def test_redact_replaces_only_the_token(text, expected):
    assert redact(text) == expected
