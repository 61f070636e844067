import pytest

from shared.errors import Unauthorized
from shared.internal_auth import ROLE_HEADER, TIMESTAMP_HEADER, Caller, sign, verify

SECRET = b"s" * 32
CALLER = Caller("key:abc", "viewer")


def test_verify_returns_the_signed_caller():
    headers = sign(SECRET, method="GET", path="/api/v1/budget/x", caller=CALLER)
    assert verify(SECRET, method="GET", path="/api/v1/budget/x", headers=headers) == CALLER


@pytest.mark.parametrize("tamper", [
    lambda h: h | {ROLE_HEADER: "admin"},           # privilege escalation
    lambda h: {k: v for k, v in h.items() if k != ROLE_HEADER},
])
def test_verify_rejects_tampered_headers(tamper):
    headers = tamper(sign(SECRET, method="GET", path="/api/v1/x", caller=CALLER))
    with pytest.raises(Unauthorized):
        verify(SECRET, method="GET", path="/api/v1/x", headers=headers)


def test_verify_binds_method_path_and_secret():
    headers = sign(SECRET, method="GET", path="/api/v1/x", caller=CALLER)
    for method, path, secret in [("POST", "/api/v1/x", SECRET), ("GET", "/api/v1/y", SECRET),
                                 ("GET", "/api/v1/x", b"t" * 32)]:
        with pytest.raises(Unauthorized):
            verify(secret, method=method, path=path, headers=headers)


def test_verify_rejects_stale_and_future_signatures():
    headers = sign(SECRET, method="GET", path="/p", caller=CALLER, now=1_000_000)
    assert verify(SECRET, method="GET", path="/p", headers=headers, now=1_000_200) == CALLER
    for now in (1_000_000 + 301, 1_000_000 - 301):
        with pytest.raises(Unauthorized, match="expired"):
            verify(SECRET, method="GET", path="/p", headers=headers, now=now)


def test_verify_rejects_a_non_numeric_timestamp():
    headers = sign(SECRET, method="GET", path="/p", caller=CALLER) | {TIMESTAMP_HEADER: "x"}
    with pytest.raises(Unauthorized, match="gateway"):
        verify(SECRET, method="GET", path="/p", headers=headers)
