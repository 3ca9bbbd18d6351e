"""A contact's time zone from its city, region and country, on every path that writes profiles.

Bulk import, the contacts service (identify and update) and the HTTP APIs, on SQLite and PostgreSQL.
Portland is the ambiguous name: Maine (Eastern), Oregon (Pacific) and Texas (Central).
"""

# ruff: noqa: F811 - pytest fixtures imported from test_api_support are parameters here

from __future__ import annotations

from test_api_support import admin, admin_key, client, contact_of, ingest_key, write_key  # noqa: F401 - fixtures

from clarion.domain.traits import parse_traits
from clarion.services.identity import Identifiers
from clarion.services.imports.importer import Importer, ImportOptions


def zone_of(app, external_id: str) -> tuple[str, str]:
    contact = contact_of(app, "external_id", external_id)
    return contact["timezone"], contact["timezone_source"]


def test_import_resolves_zones_from_city_region_and_country(app, tmp_path):
    # given a file of contacts with only city, region and country to go by (and one phone)
    path = tmp_path / "people.csv"
    path.write_text("external_id,city,region,country,phone\n"
                    "austin,Austin,,US,\n"
                    "boston,Boston,,USA,\n"
                    "portland,Portland,,US,\n"
                    "portland-me,Portland,Maine,US,\n"
                    "sao-paulo,São Paulo,,Brazil,\n"
                    "nowhere,Nowhereville,,US,+33612345678\n", encoding="utf-8")
    importer = Importer(app.settings, app.store, app.contacts)
    # when it is imported
    result = importer.import_contacts(path, ImportOptions(reject_file=tmp_path / "rejects.csv"))
    # then each zone comes from the city, except the ambiguous one and the unknown one
    assert (result.imported, result.rejected) == (6, 0)
    assert zone_of(app, "austin") == ("America/Chicago", "city")
    assert zone_of(app, "boston") == ("America/New_York", "city")
    assert zone_of(app, "portland") == ("UTC", "city_ambiguous")
    assert zone_of(app, "portland-me") == ("America/New_York", "city")
    assert zone_of(app, "sao-paulo") == ("America/Sao_Paulo", "city")
    assert zone_of(app, "nowhere") == ("Europe/Paris", "phone")
    # when the ambiguous contact's region arrives in a later import
    path.write_text("external_id,city,region,country\nportland,Portland,OR,US\n", encoding="utf-8")
    again = importer.import_contacts(path, ImportOptions(reject_file=tmp_path / "rejects.csv"))
    # then its zone is resolved, and the other contacts are left as they were
    assert again.imported == 1
    assert zone_of(app, "portland") == ("America/Los_Angeles", "city")
    assert zone_of(app, "austin") == ("America/Chicago", "city")


def traits(**values):
    return parse_traits(values, default_region="US")


def test_identify_and_update_recompute_the_zone_from_the_city(app):
    with app.store.write() as conn:
        # given a contact identified with an ambiguous city
        cid = app.contacts.identify(conn, Identifiers(external_id="u1"), traits(city="Portland", country="US"))
        first = app.contacts.get(conn, cid)
        # when the region is added
        app.contacts.update(conn, cid, traits(region="Texas"))
        settled = app.contacts.get(conn, cid)
        # and when the contact moves to another city (the region given with it)
        app.contacts.update(conn, cid, traits(city="Boston", region="MA"))
        moved = app.contacts.get(conn, cid)
    # then the zone follows the city, and the ambiguity was recorded until it was settled
    assert (first["timezone"], first["timezone_source"]) == ("UTC", "city_ambiguous")
    assert (settled["timezone"], settled["timezone_source"]) == ("America/Chicago", "city")
    assert (moved["timezone"], moved["timezone_source"]) == ("America/New_York", "city")


def test_an_explicit_zone_still_wins_over_the_city(app):
    with app.store.write() as conn:
        cid = app.contacts.identify(conn, Identifiers(external_id="u1"),
                                    traits(timezone="Europe/Lisbon", city="Austin", country="US"))
        app.contacts.update(conn, cid, traits(city="Boston"))
        profile = app.contacts.get(conn, cid)
    assert (profile["timezone"], profile["timezone_source"]) == ("Europe/Lisbon", "explicit")


def test_rest_api_contact_gets_its_zone_from_the_city(admin):
    # when a contact is created through the REST API with a city and a state
    response = admin.post("/api/contacts", json={"external_id": "c-1", "city": "Austin", "region": "TX",
                                                 "country": "United States"})
    # then its zone comes from the city
    assert response.status_code == 200, response.text
    assert (response.json()["timezone"], response.json()["timezone_source"]) == ("America/Chicago", "city")
    # and a PATCH to an ambiguous city without a region says so
    patched = admin.patch(f"/api/contacts/{response.json()['id']}", json={"city": "Portland", "region": "Nowhere"})
    assert (patched.json()["timezone"], patched.json()["timezone_source"]) == ("UTC", "city_ambiguous")


def test_segment_identify_reads_the_address_trait(app, client, ingest_key):
    # when Segment sends the address as traits.address.{city,state,country}
    body = {"userId": "u-9", "traits": {"address": {"city": "Portland", "state": "OR", "country": "US"}}}
    response = client.post("/v1/identify", json=body, auth=write_key(ingest_key))
    # then the contact's zone comes from that city in that state
    assert response.status_code == 200
    assert zone_of(app, "u-9") == ("America/Los_Angeles", "city")
