"""schemathesis fuzzes every operation of the OpenAPI document through the app (WSGI).

It sends generated requests (valid ones and broken ones) with real tokens of an admin, a
volunteer with points and a cashier, so that the requests reach the domain code, and checks that
no response is a 5xx, that every status code is documented for its operation, and that every
body matches the schema the document promises. The examples per operation are bounded
(``FUZZ_EXAMPLES``) so the run stays short; ``derandomize`` makes it the same run each time.
"""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import make_token
from tests.factories import give_points

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def fuzz_tokens(street):
    """Tokens of an admin, a volunteer with points and a cashier: each case is sent with each."""
    give_points(street, street.vol_a, 500)
    return [make_token(getattr(street, who)) for who in ("street_admin", "vol_a", "cashier")]


def _document() -> dict:
    """Build the OpenAPI document once, from an app with no database (the document needs none)."""
    from pointsapp import create_app
    from pointsapp.api.spec import build_spec

    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "spec", "VOUCHER_KEY": "spec"})
    with app.test_request_context():
        return build_spec()


# One test per operation. (schemathesis' lazy fixture loader does not run on pytest 9,
# so the document is loaded at import and each case is sent to the test's own app.)
schema = schemathesis.openapi.from_dict(_document())


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_operation_answers_5xx_or_breaks_its_schema(case, app, fuzz_tokens):
    for secret in fuzz_tokens:
        case.call_and_validate(app=app, headers={"Authorization": f"Bearer {secret}"}, checks=CHECKS)
