"""How the API answers a request it cannot validate: FastAPI's 422, written whatever the input.

FastAPI echoes each bad value back (``input``). A JSON body may carry ``NaN``, ``Infinity`` or
``1e400`` (Python's ``json`` reads them as non-finite floats); pydantic rightly refuses them, and
then the 422 itself could not be written, JSON having no NaN: the client got a 500 and the log a
traceback. Such values are echoed as text (``"nan"``, ``"inf"``).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


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
