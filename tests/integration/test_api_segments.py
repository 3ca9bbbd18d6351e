"""The native REST API for segments: definitions, preview, explain, refresh, members and changes."""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

import pytest
from test_api_support import admin, admin_key, client, ingest_key  # noqa: F401 - fixtures

US = 'country = "US"'


def _contact(admin, external_id: str, **profile) -> int:
    response = admin.post("/api/contacts", json={"external_id": external_id, **profile})
    assert response.status_code == 200, response.text
    return response.json()["id"]


def _create(admin, name: str, rule, **fields) -> dict:
    response = admin.post("/api/segments", json={"name": name, "rule": rule, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def test_create_read_update_delete(admin):
    # given a segment created from the text form, with a schedule
    created = _create(admin, "usa", 'country IN ("US",) AND orders.count>=1', description="Buyers in the US",
                      refresh_minutes=60)
    # then it is stored as canonical JSON and shown in the canonical text form
    assert created["text"] == 'country in ("US") and orders.count >= 1'
    assert created["rule"]["all"][0] == {"field": "country", "op": "in", "value": ["US"]}
    assert created["refresh_minutes"] == 60 and created["member_count"] == 0 and created["refreshed_at"] is None
    # when it is listed, read, and patched with a JSON rule, a new description and 0 minutes
    assert [s["name"] for s in admin.get("/api/segments").json()["items"]] == ["usa"]
    assert admin.get("/api/segments/usa").json()["text"] == created["text"]
    patched = admin.patch("/api/segments/usa", json={"rule": {"field": "country", "op": "eq", "value": "CA"},
                                                      "description": "Canada now", "refresh_minutes": 0})
    # then the rule and description changed and the schedule is cleared
    assert patched.status_code == 200, patched.text
    assert patched.json()["text"] == 'country = "CA"' and patched.json()["description"] == "Canada now"
    assert patched.json()["refresh_minutes"] is None
    # and a patch of the description alone leaves the rule as it was
    assert admin.patch("/api/segments/usa", json={"description": "d"}).json()["text"] == 'country = "CA"'
    # and when it is deleted, it is gone
    assert admin.delete("/api/segments/usa").status_code == 204
    assert admin.get("/api/segments/usa").status_code == 404
    assert admin.get("/api/segments").json()["items"] == []


def test_a_json_rule_is_shown_in_the_text_form(admin):
    # given a rule in the JSON form
    rule = {"all": [{"field": "country", "op": "eq", "value": "US"}, {"performed": "Order Completed"}]}
    # when it is saved
    created = _create(admin, "us-buyers", rule)
    # then its text form is given beside it
    assert created["text"] == 'country = "US" and performed("Order Completed")'


def test_preview_counts_and_samples_without_storing(admin):
    # given three contacts, two in the US
    for name, country in (("ana", "US"), ("bo", "US"), ("cy", "FR")):
        _contact(admin, name, country=country)
    # when an unsaved rule is previewed with a sample of one, and with the default sample
    one = admin.post("/api/segments/preview", json={"rule": US, "sample": 1})
    default = admin.post("/api/segments/preview", json={"rule": {"field": "country", "op": "eq", "value": "US"}})
    # then the count is every match, the sample is cut, and nothing was stored
    assert one.status_code == 200, one.text
    assert one.json()["count"] == 2 and [c["external_id"] for c in one.json()["sample"]] == ["ana"]
    assert set(one.json()["sample"][0]) == {"id", "external_id", "email", "first_name", "last_name", "country"}
    assert [c["external_id"] for c in default.json()["sample"]] == ["ana", "bo"]
    assert admin.get("/api/segments").json()["items"] == []


def test_count_and_explain(admin):
    # given a segment and two contacts, one matching
    ana = _contact(admin, "ana", country="US", email="ana@example.com")
    cy = _contact(admin, "cy", country="FR")
    _create(admin, "us-mail", f"{US} and email exists")
    # when it is counted and explained for each
    counted = admin.get("/api/segments/us-mail/count").json()
    yes = admin.get(f"/api/segments/us-mail/explain/{ana}").json()
    no = admin.get(f"/api/segments/us-mail/explain/{cy}").json()
    # then the count is live and each explanation is the rule's tree with the deciding values
    assert counted == {"segment": "us-mail", "count": 1, "warnings": []}
    assert yes["segment"] == "us-mail" and yes["contact_id"] == ana and yes["holds"] is True
    assert yes["rule"] == 'country = "US" and email exists'
    assert [(c["rule"], c["holds"], c["values"]) for c in yes["children"]] == [
        ('country = "US"', True, {"value": "US"}), ("email exists", True, {"value": "ana@example.com"})]
    assert all(child["children"] == [] for child in yes["children"])
    assert no["holds"] is False and [c["holds"] for c in no["children"]] == [False, False]


def test_refresh_members_and_changes(admin):
    # given a segment over two Americans
    ana, bo = _contact(admin, "ana", country="US"), _contact(admin, "bo", country="US")
    _create(admin, "usa", US)
    # when it is refreshed fully
    first = admin.post("/api/segments/usa/refresh")
    # then both entered, and they are the members
    assert first.status_code == 200, first.text
    assert {k: first.json()[k] for k in ("segment", "mode", "members", "entered", "left")} == {
        "segment": "usa", "mode": "full", "members": 2, "entered": 2, "left": 0}
    assert admin.get("/api/segments/usa/members").json()["items"] == [ana, bo]
    assert admin.get("/api/segments/usa/members", params={"limit": 1, "offset": 1}).json()["items"] == [bo]
    polled = admin.get("/api/segments/usa/changes").json()
    assert [(c["contact_id"], c["change"]) for c in polled["items"]] == [(ana, "entered"), (bo, "entered")]
    # given Bo moves to France and Cy arrives in the US, when refreshed incrementally
    admin.patch(f"/api/contacts/{bo}", json={"country": "FR"})
    cy = _contact(admin, "cy", country="US")
    second = admin.post("/api/segments/usa/refresh", params={"incremental": True}).json()
    # then only the changes are new to a poller resuming after the last id it saw
    assert (second["mode"], second["members"], second["entered"], second["left"]) == ("incremental", 2, 1, 1)
    resumed = admin.get("/api/segments/usa/changes", params={"after": polled["next_after"]}).json()
    assert sorted((c["contact_id"], c["change"]) for c in resumed["items"]) == [(bo, "left"), (cy, "entered")]
    assert admin.get("/api/segments/usa").json()["member_count"] == 2
    # and nothing is left after the last change
    assert admin.get("/api/segments/usa/changes", params={"after": resumed["next_after"]}).json()["items"] == []


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/segments"), ("POST", "/api/segments/preview"), ("GET", "/api/segments/usa/count"),
    ("POST", "/api/segments/usa/refresh"), ("DELETE", "/api/segments/usa")])
def test_only_admin_keys_may_use_segments(client, ingest_key, method, path):
    # given no key, and an ingest key
    # when either calls a segment endpoint
    anonymous = client.request(method, path, json={"rule": US})
    ingest = client.request(method, path, json={"rule": US}, headers={"Authorization": f"Bearer {ingest_key}"})
    # then the first is unauthorised and the second forbidden
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
    assert ingest.status_code == 403 and ingest.json()["error"] == "forbidden"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/segments/nope"), ("PATCH", "/api/segments/nope"), ("DELETE", "/api/segments/nope"),
    ("GET", "/api/segments/nope/count"), ("GET", "/api/segments/nope/explain/1"),
    ("POST", "/api/segments/nope/refresh"), ("GET", "/api/segments/nope/members"),
    ("GET", "/api/segments/nope/changes")])
def test_an_unknown_segment_is_404(admin, method, path):
    # given a contact but no segment
    _contact(admin, "ana")
    # when a segment that does not exist is used
    response = admin.request(method, path, json={"description": "x"} if method == "PATCH" else None)
    # then the answer is 404
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "not_found"


def test_explaining_an_unknown_contact_is_404(admin):
    _create(admin, "usa", US)
    response = admin.get("/api/segments/usa/explain/999999")
    assert response.status_code == 404 and "contact" in response.json()["message"]


def test_a_duplicate_name_and_deleting_a_used_segment_are_409(admin):
    # given a segment used by another
    _create(admin, "usa", US)
    _create(admin, "us-buyers", 'in_segment("usa") and orders.count >= 1')
    # when the name is taken again, and the used segment is deleted
    duplicate = admin.post("/api/segments", json={"name": "usa", "rule": US})
    in_use = admin.delete("/api/segments/usa")
    # then both conflict, saying why
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["message"]
    assert in_use.status_code == 409 and "used by: us-buyers" in in_use.json()["message"]
    assert admin.get("/api/segments/usa").status_code == 200


def test_a_syntax_error_answers_422_with_line_and_column(admin):
    # given a rule whose second line does not parse
    rule = 'country = "US"\nand orders.count >='
    # when it is saved
    response = admin.post("/api/segments", json={"name": "broken", "rule": rule})
    # then the answer says where and why, and nothing was stored
    assert response.status_code == 422
    body = response.json()
    assert (body["error"], body["field"], body["line"], body["column"]) == ("invalid_rule", "rule", 2, 20)
    assert body["reason"] and body["message"].startswith("line 2, column 20: ")
    assert admin.get("/api/segments").json()["items"] == []


@pytest.mark.parametrize(("rule", "path", "reason"), [
    ({"all": [{"field": "country", "op": "eq"}, {"performed": "X"}]}, "all[0].value", "takes one value"),
    ({"field": "country", "op": "near", "value": "US"}, "op", "unknown op"),
    ("orders.cnt >= 1", "orders.cnt", "unknown field 'orders.cnt'"),
    ('in_segment("nope")', "in_segment", "unknown segment 'nope'"),
    ({"field": "orders.count", "op": "gte", "value": 2**64}, "value", "beyond 64 bits"),
    ({"any": [{"field": "city", "op": "eq", "value": "Porto"}, {"field": "orders.count", "op": "in",
                                                                "value": [1, -(2**63) - 1]}]},
     "any[1].value", "beyond 64 bits"),
    ({"field": "rfm.f", "op": "lte", "value": -1.4e285}, "value", "beyond 64 bits"),
    ('orders.last_at after "9999-12-31"', "", "too close to year 1 or 9999"),
])
def test_an_invalid_rule_answers_422_with_its_path_and_reason(admin, rule, path, reason):
    # given an invalid rule
    # when it is previewed
    response = admin.post("/api/segments/preview", json={"rule": rule})
    # then the answer names the path in the rule and the reason
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["error"], body["field"], body["path"]) == ("invalid_rule", "rule", path)
    assert reason in body["reason"] and "line" not in body


def test_patching_in_an_invalid_rule_keeps_the_old_one(admin):
    _create(admin, "usa", US)
    response = admin.patch("/api/segments/usa", json={"rule": "country ="})
    assert response.status_code == 422 and response.json()["line"] == 1
    assert admin.get("/api/segments/usa").json()["text"] == US


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("POST", "/api/segments", {"name": "   ", "rule": US}, "name"),
    ("POST", "/api/segments", {"name": "x" * 101, "rule": US}, "name"),
    ("POST", "/api/segments", {"name": "a/b", "rule": US}, "name"),
    ("POST", "/api/segments", {"name": "usa"}, "rule"),
    ("POST", "/api/segments", {"name": "usa", "rule": US, "refresh_minutes": -1}, "refresh_minutes"),
    ("POST", "/api/segments", {"name": "usa", "rule": US, "colour": "red"}, "colour"),
    ("POST", "/api/segments/preview", {"rule": US, "sample": 1001}, "sample"),
    ("PATCH", "/api/segments/usa", {"refresh_minutes": -5}, "refresh_minutes"),
])
def test_invalid_fields_answer_422_naming_the_field(admin, method, path, body, field):
    # given a segment, and a request with one bad field
    _create(admin, "usa", US)
    # when it is sent
    response = admin.request(method, path, json=body)
    # then the field is named
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_field" and response.json()["field"].startswith(field)


@pytest.mark.parametrize("rule", [42, ["country", "=", "US"], None, True])
def test_a_rule_is_a_string_or_an_object(admin, rule):
    response = admin.post("/api/segments/preview", json={"rule": rule})
    assert response.status_code == 422 and response.json()["field"].startswith("rule")


@pytest.mark.parametrize(("path", "params"), [
    ("/api/segments/usa/members", {"limit": 0}), ("/api/segments/usa/members", {"limit": 10_001}),
    ("/api/segments/usa/members", {"offset": -1}), ("/api/segments/usa/changes", {"after": -1}),
    ("/api/segments/usa/explain/0", {})])
def test_out_of_range_parameters_are_422(admin, path, params):
    _create(admin, "usa", US)
    assert admin.get(path, params=params).status_code == 422
