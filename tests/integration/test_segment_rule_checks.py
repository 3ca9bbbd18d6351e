"""No silent wrong results from segment rules, on both stores: a value no contact can have is refused where a
rule is accepted (service, campaign eligibility, CLI, API), and an event or topic the store has never seen is
accepted with a warning that names the closest known one."""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

import json

import pytest
from delivery_world import make_campaign
from segment_world import World
from test_api_support import admin, admin_key, client  # noqa: F401 - fixtures
from typer.testing import CliRunner

from clarion.cli.main import app as cli
from clarion.domain.errors import FieldError
from clarion.domain.rules import RuleError
from clarion.services.campaigns import CampaignService
from clarion.services.rule_warnings import event_names, event_seen
from clarion.services.segments import SegmentService

ORDER_TYPO = "no event named 'order completed' has been seen; did you mean 'Order Completed'?"
CHAMPION = ("rfm.segment: 'champion' is not an RFM segment (champions, loyal, potential_loyalist, new_customers, "
            "promising, need_attention, about_to_sleep, at_risk, cant_lose, hibernating, lost); did you mean "
            "'champions'?")
runner = CliRunner()


@pytest.fixture
def service(app) -> SegmentService:
    return SegmentService(app.settings)


@pytest.fixture
def world(app) -> dict[str, int]:
    """Ana ordered and viewed a product, Ben only viewed; Ana is scored 'cant_lose'; a 'newsletter' topic."""
    with app.store.write() as conn:
        people = World(app, conn)
        people.contact("ana", country="PT")
        people.contact("ben", country="US")
        people.event("ana", "Order Completed", 2, revenue=30.0)
        people.event("ana", "Product Viewed", 3)
        people.event("ben", "Product Viewed", 1)
        people.score("ana", rfm_r=1, rfm_f=5, rfm_m=5, rfm_segment="cant_lose")
        app.consent.create_topic(conn, "newsletter", "Newsletter")
        return people.ids


# -- the service -------------------------------------------------------------------------------------------------
def test_an_event_never_seen_is_accepted_with_a_warning_naming_the_closest(app, service, world):
    with app.store.read() as conn:
        # given events named "Order Completed" and "Product Viewed"
        # when rules naming them with a slip, or exactly, are previewed
        slipped = service.preview(conn, 'performed("order completed")')
        exact = service.preview(conn, 'performed("Order Completed")')
        several = service.preview(conn, 'last_performed("Product Veiwed") within 30 days or '
                                        'sum("order completed", revenue) > 1 or performed("Signed Up") or '
                                        'not performed("order completed")')
    # then the slip matches nobody and says so with the exact name; the exact name has no warning
    assert (slipped["count"], slipped["warnings"]) == (0, [ORDER_TYPO])
    assert (exact["count"], exact["warnings"]) == (1, [])
    # and each unseen name is warned about once, in the rule's order, with no suggestion when none is close
    assert several["warnings"] == [
        "no event named 'Product Veiwed' has been seen; did you mean 'Product Viewed'?", ORDER_TYPO,
        "no event named 'Signed Up' has been seen yet"]


def test_warnings_reach_create_update_and_count(app, service, world):
    with app.store.write() as conn:
        # when a rule naming an unseen event is created, counted and changed
        created = service.create(conn, "buyers", 'performed("order completed") >= 2 times')
        counted = service.count(conn, "buyers")
        updated = service.update(conn, "buyers", rule='performed("Order Completed") and performed("page viewed")')
        described = service.update(conn, "buyers", description="no rule change")
        # then each result carries the warnings of the rule it accepted or counted, and the rule is stored
        assert created["warnings"] == [ORDER_TYPO]
        assert created["text"] == 'performed("order completed") >= 2 times'
        assert counted == {"segment": "buyers", "count": 0, "warnings": [ORDER_TYPO]}
        assert updated["warnings"] == ["no event named 'page viewed' has been seen; did you mean 'Product Viewed'?"]
        assert described["warnings"] == [] and described["text"] == updated["text"]


def test_a_topic_that_does_not_exist_is_a_warning(app, service, world):
    with app.store.read() as conn:
        # when reachable() names a topic with a slip, an existing topic, and the channel as a whole
        slipped = service.preview(conn, 'reachable("email", topic = "newsleter")')
        fine = service.preview(conn, 'reachable("email", topic = "newsletter") or reachable("sms", topic = "*")')
    # then only the slip is warned about, saying what the rule then does
    assert slipped["warnings"] == ["no topic 'newsleter' exists, so reachable() goes by the channel's consent "
                                   "alone; did you mean 'newsletter'?"]
    assert fine["warnings"] == []


def test_a_value_outside_a_closed_set_is_refused_and_nothing_changes(app, service, world):
    with app.store.write() as conn:
        service.create(conn, "keep", 'country = "PT"')
        # when rules that could never match are created or put in place of a valid one
        with pytest.raises(RuleError) as refused:
            service.create(conn, "vip", 'rfm.segment in ("champion")')
        with pytest.raises(RuleError, match="'Narnia' is not an ISO 3166-1 country code or name"):
            service.update(conn, "keep", rule='country = "Narnia"')
        with pytest.raises(RuleError, match="did you mean 'Europe/Lisbon'"):
            service.preview(conn, 'timezone = "Europe/Lisbin"')
        # then the error names the nearest segment, and nothing was stored or changed
        assert str(refused.value) == CHAMPION
        assert [(s["name"], s["text"]) for s in service.list(conn)] == [("keep", 'country = "PT"')]


def test_a_label_or_name_is_stored_as_its_value_and_matches(app, service, world):
    with app.store.write() as conn:
        # when a segment names an RFM label and a country by name
        created = service.create(conn, "save", 'rfm.segment = "Can\'t lose them" or country = "United States"')
        counted = service.count(conn, "save")
    # then the stored rule holds the values that contacts and scores hold, and both contacts match
    assert created["rule"]["any"] == [{"field": "rfm.segment", "op": "eq", "value": "cant_lose"},
                                      {"field": "country", "op": "eq", "value": "US"}]
    assert counted["count"] == 2


def test_an_unknown_segment_suggests_the_nearest(app, service, world):
    with app.store.write() as conn:
        service.create(conn, "big-spenders", 'country = "US"')
        # when a rule refers to a segment with a slip / then
        with pytest.raises(RuleError, match="unknown segment 'big-spender'; did you mean 'big-spenders'\\?"):
            service.create(conn, "ref", 'in_segment("big-spender")')


def test_event_names_come_from_an_index_seek_and_a_loose_index_scan(app, world):
    with app.store.read() as conn:
        # when the names are looked up and listed
        seen = [event_seen(conn, name) for name in ("Order Completed", "order completed", "Order")]
        names, first = event_names(conn), event_names(conn, limit=1)
    # then the exact name is seen, others are not, and each distinct name comes once
    assert seen == [True, False, False]
    assert sorted(names) == ["Order Completed", "Product Viewed"] and len(first) == 1 and first[0] in names


def test_campaign_eligibility_is_checked_and_warned_about(app, world):
    # when a campaign's eligibility rule names an unseen event and an RFM label
    created = make_campaign(app, "winback", start=False,
                            eligibility='performed("order completed") and rfm.segment = "Can\'t lose them"')
    # then the campaign is created, warning about the event, with the label stored as its value
    assert f"eligibility: {ORDER_TYPO}" in created["warnings"]
    assert created["eligibility"]["all"][1] == {"field": "rfm.segment", "op": "eq", "value": "cant_lose"}
    # and a rule that could never match is refused, naming the eligibility, and no campaign is stored
    with pytest.raises(FieldError, match="eligibility: rfm.segment: 'champion' is not an RFM segment"):
        make_campaign(app, "vip", start=False, eligibility='rfm.segment = "champion"')
    with app.store.read() as conn:
        assert [c["name"] for c in CampaignService(app.settings).list(conn)] == ["winback"]


# -- the CLI -----------------------------------------------------------------------------------------------------
def _run(app, *args: str):
    return runner.invoke(cli, ["--database-url", app.settings.database_url, "segments", *args])


def test_the_cli_refuses_a_value_in_one_line_and_stores_nothing(app, world):
    # when a segment that could never match is created
    result = _run(app, "create", "vip", "--rule", 'rfm.segment in ("champion")')
    # then one line on stderr, exit 1, no traceback, and no segment
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {CHAMPION}"
    assert json.loads(_run(app, "list", "--json").stdout) == []


def test_the_cli_prints_warnings_on_stderr_and_in_json(app, world):
    # when a rule naming an unseen event is created (JSON), previewed (table) and counted (JSON)
    created = _run(app, "create", "buyers", "--rule", 'performed("order completed")', "--json")
    previewed = _run(app, "preview", "--rule", 'performed("order completed")')
    counted = _run(app, "count", "buyers", "--json")
    # then each succeeds, with the warning as one stderr line and, with --json, under "warnings"
    assert (created.exit_code, previewed.exit_code, counted.exit_code) == (0, 0, 0), created.output
    for result in (created, previewed, counted):
        assert result.stderr.strip() == f"warning: {ORDER_TYPO}"
    assert json.loads(created.stdout)["warnings"] == [ORDER_TYPO]
    assert json.loads(counted.stdout) == {"segment": "buyers", "count": 0, "warnings": [ORDER_TYPO]}
    assert "0 contacts match" in previewed.stdout and "warning" not in previewed.stdout


# -- the API -----------------------------------------------------------------------------------------------------
def test_the_api_answers_422_for_a_value_that_could_never_match(admin, world):
    # when a segment that could never match is created (JSON form) and previewed (text form)
    created = admin.post("/api/segments", json={"name": "vip", "rule": {
        "field": "rfm.segment", "op": "in", "value": ["champion"]}})
    previewed = admin.post("/api/segments/preview", json={"rule": 'country = "Germny"'})
    # then both are 422 invalid_rule with the field and the reason, and nothing is stored
    assert created.status_code == previewed.status_code == 422
    body = created.json()
    assert (body["error"], body["path"], body["message"]) == ("invalid_rule", "rfm.segment", CHAMPION)
    assert previewed.json()["reason"] == ("'Germny' is not an ISO 3166-1 country code or name; did you mean 'DE' "
                                          "(Germany)?")
    assert admin.get("/api/segments").json()["items"] == []


def test_the_api_answers_warnings_where_a_rule_is_accepted(admin, world):
    # when a rule naming an unseen event is created, changed, previewed and counted
    created = admin.post("/api/segments", json={"name": "buyers", "rule": 'performed("order completed")'})
    patched = admin.patch("/api/segments/buyers", json={"rule": 'performed("order completed") >= 2 times'})
    previewed = admin.post("/api/segments/preview", json={"rule": 'performed("Order Completed")'})
    counted = admin.get("/api/segments/buyers/count")
    # then the rule is accepted and each body lists the warnings of its rule
    assert created.status_code == 201 and created.json()["warnings"] == [ORDER_TYPO]
    assert patched.status_code == 200 and patched.json()["warnings"] == [ORDER_TYPO]
    assert previewed.json()["warnings"] == [] and previewed.json()["count"] == 1
    assert counted.json() == {"segment": "buyers", "count": 0, "warnings": [ORDER_TYPO]}
