"""The budget's polled reads answer a strong ETag made from their bytes and 304 on a matching
`If-None-Match`: the ETag changes exactly when the bytes do, in every process, and an old ETag
is answered with the new bytes, never a stale 304."""
import httpx

from tests.budget.test_actuals import rows
from tests.budget.test_campaign_funding import funded_budget, lines, phased_campaign, put
from tests.budget.test_kept_answers import other  # noqa: F401 (a second process, a fixture)
from tests.shared.test_kept import compressions  # noqa: F401 (a fixture)

READS = ("/variance", "/review", "/variance.csv", "/review.csv", "/reserve")


def read(api, path: str, **headers: str) -> httpx.Response:
    return api.get(path, role="finance", headers=headers)


def test_a_read_answers_304_to_its_etag_compared_weakly(api):
    budget, channels = funded_budget(api)
    campaign = phased_campaign(api)
    path = f"/budgets/{budget['id']}"
    api.ok(put(api, budget["id"], campaign["id"],
               {"lines": lines(channels, search="12000.00")}), 201)
    for read_path in (*READS, f"/variance?campaign_id={campaign['id']}",
                      f"/variance.csv?campaign_id={campaign['id']}"):
        first = read(api, path + read_path)
        etag = first.headers["etag"]
        assert first.status_code == 200 and first.content, read_path
        assert etag.startswith('"') and etag.endswith('"') and len(etag) == 34
        assert first.headers["cache-control"] == "private, no-cache"
        for sent in (etag, f"W/{etag}", "*", f'"other", {etag}'):
            again = read(api, path + read_path, **{"If-None-Match": sent})
            assert (again.status_code, again.content, again.headers["etag"],
                    again.headers["cache-control"]) == (304, b"", etag, "private, no-cache")
        for sent in ('"other"', etag[:-2] + '"', etag.strip('"')):
            again = read(api, path + read_path, **{"If-None-Match": sent})
            assert (again.status_code, again.content, again.headers["etag"]) == (
                200, first.content, etag), sent


def test_a_kept_read_is_gzipped_once_with_the_identity_bytes_etag(
        api, compressions):  # noqa: F811
    budget, channels = funded_budget(api)
    campaign = phased_campaign(api)
    api.ok(put(api, budget["id"], campaign["id"],
               {"lines": lines(channels, search="12000.00")}), 201)
    path = f"/budgets/{budget['id']}/variance"
    plain = read(api, path, **{"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and len(plain.content) > 1400
    for _ in range(2):
        gzipped = read(api, path, **{"Accept-Encoding": "gzip"})
        assert gzipped.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in gzipped.headers["vary"].lower()
        assert (gzipped.content, gzipped.headers["etag"]) == (plain.content, plain.headers["etag"])
    assert compressions == [1]


def test_the_etag_changes_exactly_when_the_bytes_do(api, other):  # noqa: F811
    budget, channels = funded_budget(api)
    campaign = phased_campaign(api)
    path = f"/budgets/{budget['id']}"
    cut = f"/variance?campaign_id={campaign['id']}"
    cut_csv = f"/variance.csv?campaign_id={campaign['id']}"
    reads = (*READS, cut, cut_csv)
    api.ok(put(api, budget["id"], campaign["id"],
               {"lines": lines(channels, search="12000.00")}), 201)
    # Carrying the campaign: its cut by campaign changes too.
    actual = [{**row, "campaign_id": campaign["id"]}
              for row in rows(channels, {"search": [("300", "600")]})]

    def funding(amount: str) -> None:
        api.ok(put(api, budget["id"], campaign["id"],
                   {"lines": lines(channels, search=amount)}))

    changes = {
        "actuals": lambda: api.ok(api.post(f"{path}/actuals", {"rows": actual}, role="finance")),
        # The same file again: the revision stays, and so do the bytes.
        "replayed actuals": lambda: api.ok(api.post(f"{path}/actuals", {"rows": actual},
                                                    role="finance")),
        # A campaign's funding moves no revision: only the cut by campaign changes.
        "funding": lambda: funding("15000.00"),
        "draw": lambda: api.ok(api.post(f"{path}/reserve/draws", {
            "amount": "100", "reason": "x", "channel_id": channels["social"]["id"],
            "period": "2027-01"}), 201),
    }
    held = {r: read(api, path + r) for r in reads}
    for name, change in changes.items():
        change()
        for process in (other, api):
            for r in reads:
                fresh = read(process, path + r)
                assert fresh.status_code == 200
                same = fresh.content == held[r].content
                assert (fresh.headers["etag"] == held[r].headers["etag"]) == same, (name, r)
                # The client's copy, sent back: 304 only while it is still the answer.
                polled = read(process, path + r, **{"If-None-Match": held[r].headers["etag"]})
                if same:
                    assert polled.status_code == 304, (name, r)
                else:
                    assert (polled.status_code, polled.content, polled.headers["etag"]) == (
                        200, fresh.content, fresh.headers["etag"]), (name, r)
        changed = {r for r in reads if read(api, path + r).content != held[r].content}
        expected = {"actuals": {"/variance", "/review", "/variance.csv", "/review.csv", cut,
                                cut_csv},
                    "replayed actuals": set(),
                    "funding": {cut, cut_csv},
                    "draw": {"/variance", "/variance.csv", "/reserve"}}[name]
        assert changed == expected, name
        held = {r: read(api, path + r) for r in reads}


STREAMED = ("/plans/1.csv", "/reserve/entries.csv", "/actuals.csv", "/audit.csv")


def test_a_streamed_export_never_answers_304_to_other_bytes(api, other):  # noqa: F811
    """The streamed exports' ETags are of the ledger's state, read before their rows: a change
    that leaves a file as it was may give it a new ETag, but the same ETag is always the same
    bytes, and an old one sent back gets the new file."""
    budget, channels = funded_budget(api)
    campaign = phased_campaign(api)
    path = f"/budgets/{budget['id']}"
    api.ok(put(api, budget["id"], campaign["id"],
               {"lines": lines(channels, search="12000.00")}), 201)
    reads = (*STREAMED, f"/actuals.csv?campaign_id={campaign['id']}")
    actual = [{**row, "campaign_id": campaign["id"]}
              for row in rows(channels, {"search": [("300", "600")]})]
    changes = {
        "actuals": lambda: api.ok(api.post(f"{path}/actuals", {"rows": actual}, role="finance")),
        "restated": lambda: api.ok(api.post(f"{path}/actuals", {"rows": [
            {**actual[0], "spend": "310"}]}, role="finance")),
        "draw": lambda: api.ok(api.post(f"{path}/reserve/draws", {
            "amount": "100", "reason": "x", "channel_id": channels["social"]["id"],
            "period": "2027-01"}), 201),
        "renamed": lambda: api.ok(api.patch(
            f"{path}/channels/{channels['search']['id']}", {"name": "search 2"},
            headers={"If-Match": f'"{channels["search"]["version"]}"'})),
    }
    held = {r: read(api, path + r) for r in reads}
    for r, first in held.items():
        assert first.status_code == 200 and first.headers["cache-control"] == "private, no-cache"
        for sent in (first.headers["etag"], f"W/{first.headers['etag']}", "*"):
            again = read(other, path + r, **{"If-None-Match": sent})
            assert (again.status_code, again.content, again.headers["etag"]) == (
                304, b"", first.headers["etag"]), r
    changed = set()
    for name, change in changes.items():
        change()
        for r in reads:
            fresh = read(api, path + r)
            if fresh.content != held[r].content:
                changed.add(r)
                assert fresh.headers["etag"] != held[r].headers["etag"], (name, r)
                polled = read(other, path + r, **{"If-None-Match": held[r].headers["etag"]})
                assert (polled.status_code, polled.content) == (200, fresh.content), (name, r)
            assert read(other, path + r).headers["etag"] == fresh.headers["etag"]
            held[r] = fresh
    assert changed == set(reads)
    # A plan that does not exist is a 404, whatever the validator.
    assert read(api, f"{path}/plans/9.csv", **{"If-None-Match": "*"}).status_code == 404
