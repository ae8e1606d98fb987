"""Every operation of the gateway's OpenAPI document shows examples, and they fit.

Swagger UI, ReDoc and client generators show a body's examples; one that is
missing leaves a client guessing, one that no longer fits its schema misleads
it. So every request body and every answer with a body carries at least one
example, and every example is validated against the schema the document gives
for that body. A route added later is held to the same: the failure names each
operation and status that lacks an example, and how to add one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from tests.support.gateway_twins import gateway_over_twins
from tributary_shared.twins import MemoryApiKeyStore, MemoryPublisher, MemoryWorkflowStore

HOW_TO_FIX = (
    "Give each one examples: for an answer, `tributary_gateway.responses.answer(...)` (an "
    "error) or `success(...)` (the route's own status) in the route's `responses=`; for a "
    "request body, `Body(openapi_examples=openapi_examples(...))`. Example bodies live in "
    "`tributary_gateway.examples` and `tributary_gateway.error_examples`."
)


@dataclass(frozen=True)
class Body:
    """One body of the document: a request body or an answer, in one media type."""

    where: str
    """``POST /v1/workflows request body (application/json)``, ``... answer 404 (...)``."""
    media: dict[str, Any]

    def examples(self, components: dict[str, Any]) -> dict[str, Any]:
        """Its examples by name: the media type's, else its schema's (``json_schema_extra``)."""
        if "example" in self.media:
            return {"example": self.media["example"]}
        if self.media.get("examples"):
            return {name: ex.get("value") for name, ex in self.media["examples"].items()}
        schema = _resolved(self.media.get("schema", {}), components)
        return {f"schema example {i}": ex for i, ex in enumerate(schema.get("examples", []))}


def _resolved(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    prefix = "#/components/schemas/"
    if ref.startswith(prefix):
        resolved: dict[str, Any] = components.get("schemas", {})[ref.removeprefix(prefix)]
        return resolved
    return schema


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}:
                yield f"{method.upper()} {path}", operation


def bodies_lacking_examples(document: dict[str, Any]) -> list[str]:
    """Each request body, and each answer that has a body, with no example in any media type.

    An answer listing several media types needs examples in one of them: FastAPI
    adds an ``application/json`` entry without a schema to a route that streams.
    """
    components = document.get("components", {})
    lacking = []
    for label, operation in operations(document):
        request = operation.get("requestBody", {}).get("content", {})
        for media_type, media in request.items():
            if not Body("", media).examples(components):
                lacking.append(f"{label}: request body ({media_type})")
        for status, answer in operation["responses"].items():
            content = answer.get("content", {})
            if content and not any(Body("", m).examples(components) for m in content.values()):
                lacking.append(f"{label}: answer {status} ({', '.join(content)})")
    return lacking


def every_body(document: dict[str, Any]) -> Iterator[Body]:
    for label, operation in operations(document):
        request = operation.get("requestBody", {}).get("content", {})
        for media_type, media in request.items():
            yield Body(f"{label} request body ({media_type})", media)
        for status, answer in operation["responses"].items():
            for media_type, media in answer.get("content", {}).items():
                yield Body(f"{label} answer {status} ({media_type})", media)


def misfits(document: dict[str, Any]) -> list[str]:
    """Each example that its body's schema refuses, with why."""
    components = document.get("components", {})
    found = []
    for body in every_body(document):
        # The schema's references point into the document's components.
        schema = {**body.media.get("schema", {}), "components": components}
        validator = Draft202012Validator(schema)
        for name, value in body.examples(components).items():
            for error in validator.iter_errors(value):
                at = "/".join(str(part) for part in error.absolute_path) or "(the whole body)"
                found.append(f"{body.where}, example {name!r}, at {at}: {error.message}")
    return found


@pytest.fixture
async def document() -> AsyncIterator[dict[str, Any]]:
    """The document as the gateway serves it at ``/openapi.json``."""
    async with gateway_over_twins(
        store=MemoryWorkflowStore(), publisher=MemoryPublisher(), keys=MemoryApiKeyStore()
    ) as gateway:
        answer = await gateway.get("/openapi.json")
        assert answer.status_code == 200
        yield answer.json()


def test_every_request_body_and_answer_has_an_example(document: dict[str, Any]) -> None:
    lacking = bodies_lacking_examples(document)
    assert not lacking, "Without an example:\n  " + "\n  ".join(lacking) + "\n" + HOW_TO_FIX


def test_every_example_fits_the_schema_of_its_body(document: dict[str, Any]) -> None:
    found = misfits(document)
    assert not found, "Examples their schema refuses:\n  " + "\n  ".join(found)


def test_the_document_has_examples_of_every_kind_of_answer(document: dict[str, Any]) -> None:
    # The walk above finds what is there; this keeps it from passing on a document whose
    # routes went missing (a router no longer included).
    components = document["components"]
    examples = {body.where for body in every_body(document) if body.examples(components)}
    for where in [
        "POST /v1/workflows request body (application/json)",
        "POST /v1/workflows answer 202 (application/json)",
        "GET /v1/workflows/{workflow_id}/events answer 200 (text/event-stream)",
        "POST /v1/keys request body (application/json)",
        "DELETE /v1/keys/{key_id} answer 404 (application/json)",
        "GET /readyz answer 503 (application/json)",
    ]:
        assert where in examples, where


def test_the_walk_names_what_lacks_an_example_and_what_does_not_fit() -> None:
    # A document of a route added without examples, and one whose example is stale.
    problem = {"$ref": "#/components/schemas/Problem"}
    document: dict[str, Any] = {
        "components": {
            "schemas": {
                "Problem": {
                    "type": "object",
                    "properties": {"detail": {"type": "string"}},
                    "required": ["detail"],
                }
            }
        },
        "paths": {
            "/v1/workflows/{workflow_id}/input": {
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": {}}}},
                    "responses": {
                        "204": {"description": "Taken."},
                        "409": {"content": {"application/json": {"schema": problem}}},
                        "404": {
                            "content": {
                                "application/json": {
                                    "schema": problem,
                                    "examples": {"stale": {"value": {"message": "gone"}}},
                                }
                            }
                        },
                    },
                }
            }
        },
    }
    assert bodies_lacking_examples(document) == [
        "POST /v1/workflows/{workflow_id}/input: request body (application/json)",
        "POST /v1/workflows/{workflow_id}/input: answer 409 (application/json)",
    ]
    assert misfits(document) == [
        "POST /v1/workflows/{workflow_id}/input answer 404 (application/json), example "
        "'stale', at (the whole body): 'detail' is a required property"
    ]


async def test_swagger_ui_and_redoc_are_served() -> None:
    # The examples are for these pages; they read the same /openapi.json.
    async with gateway_over_twins(
        store=MemoryWorkflowStore(), publisher=MemoryPublisher(), keys=MemoryApiKeyStore()
    ) as gateway:
        for page in ("/docs", "/redoc"):
            answer: httpx.Response = await gateway.get(page)
            assert answer.status_code == 200, page
            assert "/openapi.json" in answer.text, page
