"""The wire contract between trucks and server: pydantic only, versioned, importable anywhere.

Importing this module must load pydantic and the standard library only (no numpy, OpenCV or
onnxruntime): the server, the tests and third-party integrators read lift events without the
vision stack. ``tests/vision/test_schema.py`` proves it in a subprocess.

Versioning: ``schema_version`` is ``MAJOR.MINOR``. A reader accepts any minor version of its own
major and ignores fields it does not know (a newer truck may send more); invalid values of known
fields are always refused with a message naming the field.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    ValidationError,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = "1.0"
SCHEMA_MAJOR = 1

__all__ = [
    "SCHEMA_VERSION",
    "ErrorItem",
    "Evidence",
    "GpsFix",
    "LiftEvent",
    "ModelInfo",
    "SchemaError",
    "Severity",
    "Stream",
    "TruckConfig",
    "TruckStats",
    "parse_lift_event",
]


class Stream(StrEnum):
    """The waste stream a truck collects on a round (French: flux)."""

    recyclables = "recyclables"  # bac jaune / emballages
    glass = "glass"  # verre
    residual = "residual"  # ordures ménagères résiduelles
    biowaste = "biowaste"  # biodéchets
    paper = "paper"  # papiers


class Severity(StrEnum):
    """How bad an item is in the stream: ``info`` (missed recycling), ``error``, ``alert`` (danger)."""

    info = "info"
    error = "error"
    alert = "alert"


class _Wire(BaseModel):
    # Tolerant reader: unknown fields from a newer minor version are ignored, not rejected.
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


class GpsFix(_Wire):
    """A position fix in WGS84 at the time of the lift."""

    lat: float = Field(ge=-90, le=90, description="Latitude, decimal degrees (WGS84)")
    lon: float = Field(ge=-180, le=180, description="Longitude, decimal degrees (WGS84)")
    accuracy_m: float | None = Field(default=None, ge=0, le=10_000, description="Horizontal accuracy, metres")
    heading_deg: float | None = Field(default=None, ge=0, lt=360, description="Course over ground, degrees")
    fix_at: AwareDatetime | None = Field(default=None, description="When the fix was taken (UTC)")

    @field_validator("fix_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None


class ErrorItem(_Wire):
    """One kind of wrong item found in a lift."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    class_: str = Field(alias="class", min_length=1, max_length=64, description="Model class name")
    count: int = Field(ge=1, le=10_000, description="Items of this class in the lift")
    category: str = Field(min_length=1, max_length=64, description="Error category used in reports")
    severity: Severity

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class ModelInfo(_Wire):
    name: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=64)


class Evidence(_Wire):
    """Describes the evidence photo, which travels separately as JPEG bytes."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    width: int = Field(ge=1, le=8192)
    height: int = Field(ge=1, le=8192)


_Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class LiftEvent(_Wire):
    """Everything the truck observed during one bin lift, judged against the stream's rules.

    ``score`` is the contamination score: ``sum(count * weight[severity])`` over ``errors`` with
    weights info 0, error 1, alert 3 (see ``vision.rules.SEVERITY_WEIGHTS``); 0 means clean.
    """

    schema_version: str = Field(default=SCHEMA_VERSION, pattern=r"^\d+\.\d+$")
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Idempotency key")
    truck_id: _Id
    sequence: NonNegativeInt = Field(description="Monotonic per truck; replay order")
    stream: Stream
    started_at: AwareDatetime
    ended_at: AwareDatetime
    gps: GpsFix | None = None
    bin_id: _Id | None = Field(default=None, description="RFID tag of the bin, when read")
    counts: dict[str, NonNegativeInt] = Field(default_factory=dict, description="class -> items counted")
    errors: list[ErrorItem] = Field(default_factory=list)
    contaminated: bool
    score: float = Field(ge=0)
    model: ModelInfo
    frames: NonNegativeInt = Field(description="Frames analysed during the lift")
    evidence: Evidence | None = None

    @field_validator("schema_version")
    @classmethod
    def _same_major(cls, value: str) -> str:
        major = int(value.split(".", 1)[0])
        if major != SCHEMA_MAJOR:
            raise ValueError(f"unsupported schema major version {major} (this reader speaks {SCHEMA_MAJOR}.x)")
        return value

    @field_validator("started_at", "ended_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("counts")
    @classmethod
    def _class_names(cls, value: dict[str, int]) -> dict[str, int]:
        for name in value:
            if not name or len(name) > 64:
                raise ValueError(f"class name {name[:70]!r} must be 1 to 64 characters")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> LiftEvent:
        if self.ended_at < self.started_at:
            raise ValueError(f"ended_at {self.ended_at.isoformat()} is before started_at {self.started_at.isoformat()}")
        if self.contaminated != any(e.severity is not Severity.info for e in self.errors):
            raise ValueError("contaminated must be true exactly when an error of severity error/alert is listed")
        return self

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), separators=(",", ":"))

    @property
    def has_alert(self) -> bool:
        return any(e.severity is Severity.alert for e in self.errors)


class TruckStats(_Wire):
    """Periodic heartbeat of a truck (``<prefix>/<truck_id>/stats``)."""

    truck_id: _Id
    sent_at: AwareDatetime
    uptime_s: float = Field(ge=0)
    fps: float | None = Field(default=None, ge=0)
    inference_ms: float | None = Field(default=None, ge=0)
    outbox_depth: NonNegativeInt = 0
    outbox_photos_dropped: NonNegativeInt = 0
    disk_free_mb: float | None = Field(default=None, ge=0)
    model: ModelInfo | None = None
    stream: Stream | None = None
    gps_fix_age_s: float | None = Field(default=None, ge=0)
    config_version: str | None = Field(default=None, max_length=64)
    lifts_total: NonNegativeInt = 0


class SchemaError(ValueError):
    """A payload that is not a valid LiftEvent; ``str()`` names every bad field."""


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(event)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_lift_event(payload: bytes | str) -> LiftEvent:
    """Parse raw MQTT bytes into a LiftEvent, raising SchemaError with a readable reason."""
    try:
        return LiftEvent.model_validate_json(payload)
    except ValidationError as error:
        raise SchemaError(_describe(error)) from None
    except ValueError as error:  # invalid UTF-8 and the like
        raise SchemaError(f"not a JSON document: {error}") from None


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of LiftEvent (``trivue schema``, ``docs/lift-event.schema.json``)."""
    schema = LiftEvent.model_json_schema(by_alias=True, mode="serialization")
    schema["$id"] = f"https://trivue.org/schema/lift-event/{SCHEMA_VERSION}"
    return schema


class TruckConfig(_Wire):
    """Retained message from the server (``<prefix>/<truck_id>/config``), applied live by the truck.

    Only the fields present change the truck's settings; ``config_version`` is echoed back in
    TruckStats so the server sees which configuration each truck runs.
    """

    config_version: str = Field(min_length=1, max_length=64, description="Server's version label")
    stream: Stream | None = Field(default=None, description="Stream collected from now on (route change)")
    conf: float | None = Field(default=None, ge=0, le=1, description="Detector confidence threshold")
    min_track_frames: int | None = Field(default=None, ge=1, le=100, description="Frames an item must be seen")
