"""Schemathesis fuzzes the server from its own OpenAPI document (bounded examples) and checks that every
answer conforms to it: status codes listed, content types, headers, response schemas, no 5xx, and
schema-invalid requests refused. (Schema-valid requests may still be refused: a string can be valid
JSON and no image; the schema cannot say which bytes decode.)"""
from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import checks  # noqa: E402

from uniembed import Embedder  # noqa: E402
from uniembed.serving import ServerConfig, create_app  # noqa: E402

CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance, checks.negative_data_rejection,
          checks.allow_header_conformance, checks.unsupported_method]


APP = create_app(Embedder.tiny(seed=0), ServerConfig(served_model_name="tiny", max_items_per_request=8,
                                                     max_media_bytes=200_000))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)  # (from_fixture does not run under pytest 9)


@pytest.mark.slow  # about a minute: six endpoints, generated and coverage cases
@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_conforms_to_the_openapi_document(case):
    case.call_and_validate(checks=CHECKS)
