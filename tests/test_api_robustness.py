"""No request, however malformed, gets a 500: a battery fired at every endpoint of the OpenAPI document.

Each endpoint receives bad JSON, wrong types, out-of-range numbers, strings where ids go,
overlong strings, unknown fields, nulls for required fields and garbled query parameters.
Every answer must be below 500 and, when it is an error, in the one error envelope.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.test_api_support import Api, assert_error
from truepipe.accounts import services as account_services
from truepipe.activities import services as activity_services
from truepipe.api.v1 import api as ninja_api
from truepipe.core.models import Via
from truepipe.pipeline import services as pipeline_services

SCHEMA = ninja_api.get_openapi_schema(path_prefix="/api/v1")
ENDPOINTS = sorted(
    (method.upper(), path)
    for path, operations in SCHEMA["paths"].items()
    for method in operations
    if method in {"get", "post", "put", "patch", "delete"}
)

WRONG_VALUES: list[Any] = [
    None,
    "",
    "abc",
    "x" * 20_000,
    "💥" * 300,
    -1,
    1.5,
    10**30,
    True,
    [1, "two", None],
    {"id": 1},
    "2024-02-30",
    "9999-99-99T99:99:99Z",
]
BAD_IDS = ["abc", "0", "-1", "1.5", "9" * 30, "%20", "null"]
BAD_BODIES = [
    "{",
    "[]",
    "null",
    '"a string"',
    "1" * 5000,
    '{"name": NaN}',
    '{"amount": 1e999999}',
    "[" * 50_000 + "]" * 50_000,
    '{"a": ' * 5000 + "1" + "}" * 5000,
    "\x00\xff",
    '{"name": "' + "x" * 3_000_000 + '"}',  # beyond DATA_UPLOAD_MAX_MEMORY_SIZE
]
BAD_QUERY_VALUES = ["-1", "abc", "9" * 40, "", "x" * 5000, "2024-99-99", "1e99", "maybe", "-amount,,password"]
BAD_IF_MATCH = ["*", "abc", '"-1"', 'W/"x"', '"99999999999999999999999"', "", '"0"']


@pytest.fixture
def targets(org):
    """A real record of each kind, so path ids can point at something that exists."""
    contact = account_services.create_contact(org.ravi, last_name="Buyer", account=org.acme, via=Via.FORM)
    activity = activity_services.log_activity(
        org.ravi, kind="call", subject="Call", opportunity=org.ravi_open, participants=[contact], via=Via.FORM
    )
    product = pipeline_services.create_product(None, name="Seats", list_price=100)
    api = Api(org.ada)
    token_id = api.post("tokens", {"name": "victim"}).json()["id"]
    return {
        "opportunities": org.ravi_open,
        "accounts": org.acme,
        "contacts": contact,
        "activities": activity,
        "products": product,
        "stages": None,
        "users": org.rita,
        "tokens": token_id,
        "api": api,
    }


def real_path(path: str, targets: dict[str, Any]) -> str:
    collection = path.split("/")[3]
    target = targets.get(collection)
    pk = target if isinstance(target, int) else getattr(target, "pk", 1)
    return path.replace("{id}", str(pk))


def body_properties(method: str, path: str) -> list[str]:
    operation = SCHEMA["paths"][path][method.lower()]
    body = operation.get("requestBody")
    if not body:
        return []
    if "application/json" not in body["content"]:  # a file upload (multipart): no JSON properties
        return []
    ref = body["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    return list(SCHEMA["components"]["schemas"][ref].get("properties", {}))


def query_parameters(method: str, path: str) -> list[str]:
    operation = SCHEMA["paths"][path][method.lower()]
    return [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]


def check(response: Any, context: Any) -> None:
    assert response.status_code < 500, (context, response.content[:300])
    if response.status_code >= 400:
        assert_error(response, response.status_code)


def current_version(targets: dict[str, Any], path: str) -> int | None:
    target = targets.get(path.split("/")[3])
    if hasattr(target, "version") and not path.endswith("/history"):
        target.refresh_from_db()
        return target.version
    return None


def test_the_battery_covers_every_endpoint():
    paths = {path for _, path in ENDPOINTS}
    assert len(ENDPOINTS) >= 35
    assert "/api/v1/opportunities/{id}/products" in paths and "/api/v1/tokens/{id}" in paths


@pytest.mark.parametrize(("method", "path"), ENDPOINTS, ids=[f"{m} {p}" for m, p in ENDPOINTS])
def test_no_malformed_request_gets_a_500(org, targets, method, path):
    api: Api = targets["api"]
    url = real_path(path, targets)
    destructive = method == "DELETE"

    # Strings, zero, negatives and huge numbers where the id goes.
    if "{id}" in path:
        for bad in BAD_IDS:
            check(api.request(method, path.replace("{id}", bad), {}), (method, bad))

    # Garbled query parameters, known and unknown.
    for name in [*query_parameters(method, path), "unknown_parameter"]:
        for value in BAD_QUERY_VALUES:
            check(
                api.request(method, url, **{name: value})
                if method == "GET"
                else api.get(url, **{name: value}),
                (name, value),
            )

    if destructive:
        for header in BAD_IF_MATCH:
            check(api.delete(url, if_match=header), ("If-Match", header))
        for raw in BAD_BODIES:
            check(api.request(method, url, raw=raw), raw[:20])
        for value in WRONG_VALUES:
            check(api.delete(url, {"version": value}), ("version", value))
        return

    # Bodies: not JSON at all, not an object, the wrong content type.
    if method in {"POST", "PUT", "PATCH"}:
        for raw in BAD_BODIES:
            check(api.request(method, url, raw=raw), raw[:20])
        check(
            api.request(method, url, raw="name=x", content_type="application/x-www-form-urlencoded"), "form"
        )
        check(api.request(method, url, raw='{"name": "x"}', content_type="text/plain"), "text/plain")

        fields = body_properties(method, path)
        bodies: list[dict[str, Any]] = [{}, {"unknown_field": 1}, dict.fromkeys(fields)]
        bodies += [{name: value} for name in fields for value in WRONG_VALUES]
        for body in bodies:
            version = current_version(targets, path)
            if version is not None and method != "POST":
                body = {**body, "version": body.get("version", version)}
            check(api.request(method, url, body), body if len(str(body)) < 200 else str(body)[:200])
        for header in BAD_IF_MATCH:
            check(api.request(method, url, {}, if_match=header), ("If-Match", header))


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer " + "x" * 10_000,
        "Bearer tp_\u00e9t\u00e9",
        "Token abc",
        "bearer  tp_x",
        "Basic !!",
    ],
)
def test_a_garbled_authorization_header_is_a_plain_401(org, header):
    response = Client().get("/api/v1/opportunities", HTTP_AUTHORIZATION=header)
    assert_error(response, 401, "unauthenticated")
