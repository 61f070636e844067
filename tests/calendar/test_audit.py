"""Every gate decision kept, and the append-only audit log: who, when, what, request id,
before and after; the database itself refuses to change either."""
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError


def gate_of(api) -> tuple[dict, dict]:
    campaign = api.from_template("standard", launch="2027-03-15")
    return campaign, next(m for m in campaign["milestones"] if m["kind"] == "review_gate")


def test_every_gate_decision_is_kept_and_the_latest_is_current(api):
    campaign, gate = gate_of(api)
    path = f"/campaigns/{campaign['id']}/milestones/{gate['id']}"
    api.ok(api.post(path + "/approval", {"decision": "rejected", "comment": "logo too small"},
                    headers={"X-Request-ID": "req-reject-1"}))
    current = api.ok(api.post(path + "/approval", {"decision": "passed"}, role="admin",
                              headers={"X-Request-ID": "req-pass-2"}))
    history = api.ok(api.get(path + "/approvals", role="viewer"))["items"]
    assert [(a["decision"], a["comment"], a["approver"], a["approver_name"], a["request_id"])
            for a in history] == [("rejected", "logo too small", "key:test", None, "req-reject-1"),
                                  ("passed", None, "key:test", None, "req-pass-2")]
    assert current["approval"] == history[-1] and current["status"] == "passed"


def test_changes_are_in_the_audit_log_with_who_what_and_request_id(api):
    campaign = api.campaign()
    path = f"/campaigns/{campaign['id']}"
    api.ok(api.patch(path, {"priority": 2}, headers={"If-Match": api.get(path).headers["etag"],
                                                      "X-Request-ID": "req-audit-1"}))
    entries = api.ok(api.get("/audit", params={"campaign_id": campaign["id"]},
                             role="finance"))["items"]
    assert [e["action"] for e in entries] == ["campaign.created", "campaign.updated"]
    update = entries[1]
    assert (update["principal"], update["principal_name"], update["role"], update["request_id"],
            update["target"]) == ("key:test", None, "planner", "req-audit-1", campaign["id"])
    assert (update["before"]["priority"], update["after"]["priority"]) == (4, 2)


@pytest.mark.parametrize("table", ["audit_entry", "approval"])
def test_the_database_refuses_to_change_the_history(api, table):
    campaign, gate = gate_of(api)
    api.ok(api.post(f"/campaigns/{campaign['id']}/milestones/{gate['id']}/approval",
                    {"decision": "passed"}))
    engine = api.client.app.state.engine
    for statement in (f"UPDATE {table} SET request_id = 'forged'", f"DELETE FROM {table}"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
