"""How the API answers a request it cannot validate: FastAPI's 422, written whatever the input.

FastAPI echoes each bad value back (``input``). A JSON body may carry ``NaN``, ``Infinity`` or
``1e400`` (Python's ``json`` reads them as non-finite floats); pydantic rightly refuses them, and
then the 422 itself could not be written, JSON having no NaN: the client got a 500 and the log a
traceback. Such values are echoed as text (``"nan"``, ``"inf"``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError

from server.periodic import outage_words

log = logging.getLogger(__name__)
RETRY_AFTER_S = 10  # a PostgreSQL restart takes seconds; the dashboard and scripts try again after this


def _writable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _writable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_writable(item) for item in value]
    return value


async def validation_failed(_request: Request, error: Exception) -> JSONResponse:
    errors = error.errors() if isinstance(error, RequestValidationError) else []
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                        content={"detail": _writable(jsonable_encoder(errors))})


def answer_validation_errors(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_failed)


# SQLite reports these bugs through the OperationalError of an outage (PostgreSQL: ProgrammingError).
_SQLITE_BUGS = ("no such table", "no such column", "has no column", "syntax error")


async def database_unavailable(request: Request, error: Exception) -> JSONResponse:
    """The database away (a restart, a failover, a connection refused): 503 and one log line. It was a
    500 "Internal Server Error" with a whole traceback per request, a bug to an alert on 5xx."""
    if isinstance(error, OperationalError) and any(bug in outage_words(error).lower() for bug in _SQLITE_BUGS):
        raise error  # a bug: the 500 and its traceback
    log.warning("database unavailable: %s %s answered 503 (%s)", request.method, request.url.path,
                outage_words(error))
    return JSONResponse(status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                        content={"detail": "the database is unavailable; try again shortly"},
                        headers={"Retry-After": str(RETRY_AFTER_S)})


def answer_database_outages(app: FastAPI) -> None:
    for kind in (OperationalError, InterfaceError):
        app.add_exception_handler(kind, database_unavailable)


# What every refusal's body looks like in the OpenAPI document: FastAPI documents only its own 422
# (a list of field errors), while the routes also refuse with one sentence (401, 403, 404, a 422
# naming a field and its value...). Undocumented, a client generated from the spec (or schemathesis)
# sees every such answer as a breach of the contract.
REFUSAL = {"title": "Refusal", "type": "object", "required": ["detail"],
           "properties": {"detail": {"type": "string", "title": "Detail",
                                     "description": "What was refused, naming the field or id and its value"}}}
FIELD_ERRORS = {"title": "HTTPValidationError", "type": "object", "required": ["detail"], "properties": {"detail": {
    "title": "Detail", "description": "FastAPI's field errors (types, bounds), or one sentence naming the field and "
                                      "its value (a value the types allow but the server cannot use)",
    "anyOf": [{"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}}, {"type": "string"}]}}}
UNSAFE_METHODS = ("post", "put", "patch", "delete")
SIGNED_OUT = "No credentials, or a token or session that is unknown, revoked or expired"
TOO_LOW = "The caller's role is below this route's (the route table of docs/api.md)"
CROSS_SITE = "A state-changing request from another site (its Origin or Referer is not this server)"
MISSING = "Nothing has this id"


def with_refusals(document: dict[str, Any]) -> dict[str, Any]:
    """The document with the refusals every route can answer, by what the route is: signed in (it has
    a ``security`` requirement: 401, 403), state-changing (the same-origin check: 403), about one
    thing named in its path (404). Each 4xx/5xx without a body's schema gets ``Refusal``, each 422
    the field errors or a sentence. Idempotent."""
    from fastapi.openapi.utils import validation_error_definition

    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Refusal"] = REFUSAL
    schemas["HTTPValidationError"] = FIELD_ERRORS
    schemas.setdefault("ValidationError", validation_error_definition)
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            reasons: dict[str, list[str]] = {}
            if operation.get("security"):
                reasons = {"401": [SIGNED_OUT], "403": [TOO_LOW]}
            if method in UNSAFE_METHODS:
                reasons.setdefault("403", []).append(CROSS_SITE)
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                reasons.setdefault("404", []).append(MISSING)
            for code, why in reasons.items():
                responses.setdefault(code, {"description": "; or ".join(why)})
            for code, response in responses.items():
                if code[0] in "45" and not response.get("content"):
                    name = "HTTPValidationError" if code == "422" else "Refusal"
                    response["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
    return document


def document_refusals(app: FastAPI) -> None:
    """``app.openapi()`` (and ``/openapi.json``) answer ``with_refusals``: once, in ``create_app``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None  # FastAPI builds the document once, then returns it cached
        document = build()
        return with_refusals(document) if fresh else document

    app.openapi = openapi  # type: ignore[method-assign]
