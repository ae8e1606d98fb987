"""The gateway's OpenAPI document, with its examples as they were written.

FastAPI drops every ``null`` from the document it generates (it encodes it with
``exclude_none``), the ``null`` values of examples included
(fastapi/fastapi#5559): a workflow's example without ``"error": null`` is not
what the gateway answers, and does not fit the schema, where ``error`` is
required. So each example also carries its value as JSON text (``marked``),
which the encoding leaves alone, and ``keep_example_nulls`` has the document put
that value back in its place.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

__all__ = ["keep_example_nulls", "marked"]

_VALUE_JSON = "x-value-json"
"""An example's value as JSON text, until the document is generated."""


def marked(value: Any) -> dict[str, Any]:
    """The fields of an example object that carry ``value``, nulls and all."""
    return {"value": value, _VALUE_JSON: json.dumps(value)}


def keep_example_nulls(app: FastAPI) -> None:
    """Have ``app.openapi()`` give every example ``marked`` built whole."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()  # FastAPI's, cached until a route is added
        _unmark(document)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _unmark(node: Any) -> None:
    if isinstance(node, dict):
        if _VALUE_JSON in node:
            node["value"] = json.loads(node.pop(_VALUE_JSON))
        for child in node.values():
            _unmark(child)
    elif isinstance(node, list):
        for child in node:
            _unmark(child)
