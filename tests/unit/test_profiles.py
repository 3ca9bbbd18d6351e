"""Profile normalisation and time zone resolution (pure functions, no store)."""

from datetime import date

import pytest

from clarion.domain.countries import normalize_country, single_zone_of_country
from clarion.domain.errors import FieldError
from clarion.domain.profiles import (
    ZoneInputs,
    normalize_email,
    normalize_phone,
    normalize_timezone,
    parse_date,
    parse_locale,
    resolve_timezone,
)
from clarion.domain.traits import parse_traits


def test_email_is_normalised_without_dns():
    assert normalize_email("  Ana.Silva@Example.COM ") == "ana.silva@example.com"


@pytest.mark.parametrize("raw", ["ana@", "not an email", "a@b", "ana@@example.com", ""])
def test_bad_email_names_the_field(raw):
    with pytest.raises(FieldError) as err:
        normalize_email(raw)
    assert err.value.field == "email"


def test_phone_becomes_e164_with_the_default_region():
    assert normalize_phone("(212) 555-0123", "US") == "+12125550123"
    assert normalize_phone("06 12 34 56 78", "FR") == "+33612345678"
    assert normalize_phone("+44 20 7946 0958", "US") == "+442079460958"


@pytest.mark.parametrize("raw", ["12", "phone", "+1 000"])
def test_bad_phone_is_refused(raw):
    with pytest.raises(FieldError) as err:
        normalize_phone(raw, "US")
    assert err.value.field == "phone"


def test_time_zone_must_be_iana():
    assert normalize_timezone("America/Sao_Paulo") == "America/Sao_Paulo"
    with pytest.raises(FieldError, match="unknown IANA time zone"):
        normalize_timezone("Mars/Olympus")


@pytest.mark.parametrize("machine_specific", ["localtime", "posixrules", "Factory"])
def test_names_that_are_not_a_place_are_not_time_zones(machine_specific):
    # "localtime" means whatever the server is set to: a contact's zone must not depend on the machine
    with pytest.raises(FieldError, match="unknown IANA time zone"):
        normalize_timezone(machine_specific)


def test_dates_accept_iso_and_compact_forms():
    assert parse_date("1990-02-28", "birthday") == date(1990, 2, 28)
    assert parse_date("2000-02-29T10:00:00Z", "birthday") == date(2000, 2, 29)
    with pytest.raises(FieldError, match="birthday"):
        parse_date("1999-02-29", "birthday")


def test_locale_is_normalised():
    assert parse_locale("pt_br") == "pt-BR"
    assert parse_locale("zh-hant-tw") == "zh-Hant-TW"
    with pytest.raises(FieldError):
        parse_locale("12-xx")


def test_countries_by_code_or_name():
    assert normalize_country("fr") == "FR"
    assert normalize_country("United Kingdom") == "GB"
    assert normalize_country("UK") == "GB"
    with pytest.raises(FieldError):
        normalize_country("Atlantis")
    assert single_zone_of_country("FR") == "Europe/Paris"
    assert single_zone_of_country("US") is None


class TestTimeZoneResolution:
    """Order: explicit > coordinates > phone > single-zone country > workspace default."""

    def test_explicit_wins_over_everything(self):
        inputs = ZoneInputs("Asia/Tokyo", 48.85, 2.35, "+33612345678", "FR")
        assert resolve_timezone(inputs, "UTC") == ("Asia/Tokyo", "explicit")

    def test_coordinates_win_over_phone_and_country(self):
        inputs = ZoneInputs(None, 40.7128, -74.0060, "+33612345678", "FR")
        assert resolve_timezone(inputs, "UTC") == ("America/New_York", "coordinates")

    def test_phone_wins_over_country(self):
        assert resolve_timezone(ZoneInputs(phone="+33612345678", country="BR"), "UTC") == \
            ("Europe/Paris", "phone")

    def test_country_with_one_zone(self):
        assert resolve_timezone(ZoneInputs(country="DE"), "UTC") == ("Europe/Berlin", "country")

    def test_country_with_many_zones_falls_back_to_the_default(self):
        assert resolve_timezone(ZoneInputs(country="US"), "Europe/Lisbon") == ("Europe/Lisbon", "default")

    def test_coordinates_at_sea_fall_through(self):
        # The middle of the Atlantic has only an Etc/GMT zone or none; either way a result comes back.
        zone, source = resolve_timezone(ZoneInputs(latitude=0.0, longitude=-30.0, country="PT"), "UTC")
        assert source in ("coordinates", "country")


class TestTraits:
    def test_segment_trait_names_map_to_fields(self):
        patch = parse_traits({"firstName": "Ana", "lastName": "Silva", "email": "ANA@x.io",
                              "address": {"city": "Porto", "country": "Portugal"}, "plan": "pro",
                              "renewal_date": "2027-01-31"}, default_region="PT")
        assert (patch.first_name, patch.last_name, patch.email) == ("Ana", "Silva", "ana@x.io")
        assert (patch.city, patch.country) == ("Porto", "PT")
        assert patch.attributes == {"plan": "pro"}
        assert patch.custom_dates == {"renewal_date": "2027-01-31"}

    def test_unknown_traits_are_dropped_when_not_kept(self):
        assert parse_traits({"plan": "pro"}, default_region="US", keep_unknown=False).attributes == {}

    def test_blank_values_mean_not_given(self):
        patch = parse_traits({"email": "", "phone": "  ", "birthday": None}, default_region="US")
        assert patch.columns() == {}

    def test_first_bad_field_is_reported(self):
        with pytest.raises(FieldError) as err:
            parse_traits({"email": "ok@example.com", "timezone": "Nowhere/City"}, default_region="US")
        assert (err.value.field, "Nowhere/City" in err.value.reason) == ("timezone", True)
