"""Error responses with secrets redacted.

FastAPI's own handlers answer with the error's detail as it is: a 404 repeats
the id from the path, a 422 repeats the offending input, so a key or password
a client put in the wrong place would come straight back (and land in proxies'
and clients' logs). These handlers answer the same, redacted (``core.redaction``).
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tributary_shared.core.redaction import Redactor

__all__ = ["redact_error_responses"]


def redact_error_responses(app: FastAPI, redactor: Redactor) -> None:
    """Answer HTTP errors and validation errors of ``app`` with their details redacted."""

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        redacted = HTTPException(
            exc.status_code, detail=redactor.json(exc.detail), headers=exc.headers
        )
        return await http_exception_handler(request, redacted)

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(
            status_code=422, content={"detail": redactor.json(jsonable_encoder(exc.errors()))}
        )

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
