"""Schemathesis generates requests from Clarion's own OpenAPI document: bad input never gets a 500."""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis

from clarion.api.app import create_app
from clarion.bootstrap import Clarion
from clarion.config import Settings
from clarion.services.identity import Identifiers


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    clarion = Clarion.from_settings(Settings(database_url=f"sqlite:///{path}", hash_salt="fuzz", _env_file=None))
    clarion.migrate()
    with clarion.store.write() as conn:
        _, secret = clarion.keys.create(conn, "fuzz", "admin")
        clarion.contacts.identify(conn, Identifiers(external_id="1", email="ana@example.com"))
    yield create_app(clarion), secret
    clarion.close()


def test_no_generated_request_makes_the_server_fail(fuzz_target):
    """Given every operation in the OpenAPI document, when schemathesis sends generated requests
    (valid and invalid against the schema) with an admin key, then none answers 5xx."""
    app, secret = fuzz_target
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:
        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(max_examples=25, deadline=None, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck))
        def check(case):
            response = case.call(headers={"Authorization": f"Bearer {secret}"})
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")

        check()
    assert failures == []
