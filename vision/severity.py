"""How bad a wrong item is, what it weighs in a lift's score, and how error categories are written.

Part of the wire contract (``vision.schema`` re-exports ``Severity``), in its own module so that the
contract stays under its size limit; like it, it imports nothing but the standard library.
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    """How bad an item is in the stream: ``info`` (missed recycling), ``error``, ``alert`` (danger)."""

    info = "info"
    error = "error"
    alert = "alert"


# Score = sum(count * weight). An alert (battery, gas cylinder) can start a truck fire: it weighs
# three ordinary errors. Info items (recyclables in the residual bin) are worth reporting but are
# not contamination of the stream collected. The reader checks a lift's score against its errors.
SEVERITY_WEIGHTS: dict[Severity, float] = {Severity.info: 0.0, Severity.error: 1.0, Severity.alert: 3.0}
CATEGORY_PATTERN = r"^[a-z0-9_]+$"  # an error category as the rules, reports and the API name it
