"""The OpenAPI document, built from the app's own route table: valid OpenAPI 3.1, every route
and method in it, each declared, and what it says derived from the sources of each fact."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.routing import Mount, Route

from gateway.app import create_app
from gateway.commands import COMMAND_ROUTES
from gateway.notification_data import data_errors
from gateway.openapi.document import openapi_document
from gateway.openapi.pages import declared
from infra.config.settings import Settings

APP = create_app(Settings(jwt_secret="s" * 40))
DOCUMENT = openapi_document(APP.routes, declared())
METHODS = ("get", "put", "post", "delete", "patch")


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOCUMENT["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1")


def test_every_route_of_the_app_appears_with_its_methods() -> None:
    """HEAD is implied by GET (RFC 9110), so it is not listed on its own."""
    seen = 0
    for route in APP.routes:
        if isinstance(route, Route):
            path = route.path
            methods = {m.lower() for m in (route.methods or {"GET"})} - {"head"}
        else:
            assert isinstance(route, Mount), route
            path, methods = f"{route.path}/{{path}}", {"get"}
        assert path in DOCUMENT["paths"], path
        assert methods <= set(DOCUMENT["paths"][path]), (path, methods)
        seen += 1
    assert seen == len(APP.routes) and seen >= 28


def test_every_operation_is_declared_and_has_a_unique_id() -> None:
    undeclared = [(p, m) for p, m, op in operations() if op.get("x-undeclared")]
    assert undeclared == [], "declare them in gateway/openapi/catalog*.py"
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids))


def test_api_routes_need_a_scope_and_document_the_common_problems() -> None:
    for path, method, op in operations():
        responses = op["responses"]
        assert "400" in responses, (path, method)
        if not path.startswith("/api/v1/"):
            assert op["security"] == [], path
            continue
        assert op["security"] and all(r["bearer"] for r in op["security"]), path
        assert {"401", "403", "429"} <= set(responses), (path, method)
        assert "x-rate-limit-class" in op
        if "requestBody" in op:
            assert {"413", "415", "422"} <= set(responses), (path, method)
        for status, response in responses.items():
            media = "application/problem+json" if status >= "400" else None
            assert media is None or media in response["content"], (path, status)


def test_command_routes_come_from_their_specs_and_schemas() -> None:
    for spec in COMMAND_ROUTES:
        op = DOCUMENT["paths"][spec.path][spec.method.lower()]
        assert op["security"] == [{"bearer": [spec.scope]}]
        assert ("201" if spec.id_param is None else "200") in op["responses"]
        assert op["requestBody"]["required"] is not spec.body_optional
    users = DOCUMENT["paths"]["/api/v1/users"]["post"]["requestBody"]["content"]
    register = users["application/json"]["schema"]
    assert register["required"] == ["email", "name"]  # user_id: default the caller
    assert register["properties"]["email"]["maxLength"] == 254
    assert register["additionalProperties"] is False
    create = DOCUMENT["paths"]["/api/v1/workspaces"]["post"]["requestBody"]["content"]
    assert create["application/json"]["schema"]["required"] == ["name"]  # owner: the caller
    remove = DOCUMENT["paths"]["/api/v1/workspaces/{id}/members/{user_id}"]["delete"]
    assert (
        "user_id"
        not in remove["requestBody"]["content"]["application/json"]["schema"]["properties"]
    )  # it is the path's


def test_rows_are_described_by_their_read_models() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    user = schemas["User"]["properties"]
    assert user["locale"]["type"] == ["string", "null"]  # a nullable text column
    assert user["registered_at"]["format"] == "date-time"
    assert user["channels"]["items"] == {"$ref": "#/components/schemas/ChannelAddress"}
    assert schemas["ChannelAddress"]["properties"]["address"]["maxLength"] == 2048
    assert set(schemas["PublicUser"]["properties"]) == {
        "user_id", "name", "status", "version", "workspaces",
    }  # fmt: skip


def examples() -> Iterator[tuple[str, dict[str, Any], Any]]:
    for path, method, op in operations():
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            if "example" in content:
                yield f"{method} {path} {media}", content["schema"], content["example"]
        for param in op["parameters"]:
            if "example" in param:
                yield f"{method} {path} {param['name']}", param["schema"], param["example"]


@pytest.mark.parametrize(("where", "schema", "example"), list(examples()))
def test_every_example_matches_its_schema(where: str, schema: Any, example: Any) -> None:
    # `#/components/...` references resolve against the root schema: give it the components.
    validator = Draft202012Validator({**schema, "components": DOCUMENT["components"]})
    assert not list(validator.iter_errors(example)), where


def test_the_notification_example_holds_what_its_template_needs() -> None:
    """Tried from the docs page, the example is accepted (202), not refused with 422."""
    body = DOCUMENT["paths"]["/api/v1/notifications"]["post"]["requestBody"]
    example = body["content"]["application/json"]["example"]
    settings = Settings(jwt_secret="s" * 40)
    assert data_errors(settings, example["template"], None, example["data"]) == []
