"""The wire contract between trucks and server: pydantic only, versioned, importable anywhere.

Importing this module must load pydantic and the standard library only (no numpy, OpenCV or
onnxruntime): the server, the tests and third-party integrators read lift events without the
vision stack. ``tests/vision/test_schema.py`` proves it in a subprocess.

Versioning: ``schema_version`` is ``MAJOR.MINOR``. A reader accepts any minor version of its own
major and ignores fields it does not know (a newer truck may send more); invalid values of known
fields are always refused with a message naming the field.

Bounds: every number is finite (no NaN/Infinity) and every count, length and sequence has an upper
bound far beyond any real lift, so whatever the parser accepts the server can store (64-bit
integers, 32-bit ``frames``, PostgreSQL text without NUL). The bounds are the ``MAX_*`` constants.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from base.ids import ID_MAX_LENGTH, ID_PATTERN, TRUCK_ID_PATTERN

# Receipts and the camera's view travel beside lift events; they live in their own modules and are
# re-exported here, so that ``from vision.schema import message_digest`` names the whole contract.
from vision.camera_view import CameraView, ViewProblem
from vision.lift_figures import check_figures
from vision.receipts import RECEIPT_DIGEST_BYTES, RECEIPT_VERSION, message_digest, parse_receipt, receipt_payload
from vision.severity import CATEGORY_PATTERN, Severity

# 1.1: TruckConfig.model, TruckStats.model_sha256 and model_update (fleet rollout);
#      ``Evidence.reason`` (why the photo was kept) and ``Evidence.detections`` (the model's boxes,
# for labelling); a 1.0 reader ignores both, a 1.1 reader reads a 1.0 photo as "contaminated".
# 1.2: ``ModelInfo.sha256``, the ONNX file that judged the lift (the INT8 and FP32 files of a version
#      share its name and version); optional: 1.0/1.1 lifts name none, a 1.1 reader ignores it.
#      ``TruckStats.outbox_photos_expired`` and ``disk_short`` (a truck's disk, weeks without signal).
# 1.3: ``TruckStats.camera_clock_offset_s``, how far the camera box's clock is off the agent's (the
#      fleet page's "horloge caméra décalée"); optional: a 1.2 truck sends none, a 1.2 reader ignores it.
# 1.4: ``LiftEvent.view_unusable`` and ``TruckStats.camera_view`` (``vision.camera_view``); optional;
# ``EvidenceReason.view``, the photo of the lift that turned the view unusable (a 1.3 reader refuses it).
SCHEMA_VERSION = "1.4"
SCHEMA_MAJOR = 1

# Upper bounds no real lift reaches (a hopper holds a few hundred items; a lift lasts a minute):
# values beyond them are bugs or attacks, refused here rather than failing in the database.
MAX_ITEMS = 10_000  # items of one class in one lift
MAX_CLASSES = 256  # distinct classes (counts keys, error rows) in one lift
MAX_FRAMES = 1_000_000  # frames analysed in one lift (stored in a 32-bit column)
MAX_SEQUENCE = 2**63 - 1  # a signed 64-bit column (BIGINT)
MAX_SCORE = 3.0 * MAX_ITEMS * MAX_CLASSES  # every item of every class an alert (weight 3)
MAX_BOXES = 1_000  # boxes on one evidence photo (a hopper photo shows tens)
MAX_COUNTER = 2**63 - 1  # heartbeat counters, stored as JSON but read back as 64-bit integers
# A camera box's clock offset: the span of Python's datetime (years 1 to 9999), so that whatever a
# photo's stamp, the agent's estimate fits and its heartbeat is never refused for it.
MAX_CLOCK_OFFSET_S = 10_000 * 366 * 86400.0
# Free text: printable only. PostgreSQL text cannot hold NUL, and control characters in a class
# or model name only ever come from a corrupted or hostile sender.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]+$"
# Timestamps: a truck whose clock fell back to the epoch still reports (the server flags it);
# year 9000 keeps local-day arithmetic (UTC+14) far from datetime's year-9999 limit.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)

__all__ = [
    "RECEIPT_DIGEST_BYTES",
    "RECEIPT_VERSION",
    "SCHEMA_VERSION",
    "ErrorItem",
    "Evidence",
    "EvidenceBox",
    "EvidenceReason",
    "GpsFix",
    "LiftEvent",
    "ModelCheck",
    "ModelInfo",
    "ModelRef",
    "ModelUpdate",
    "SchemaError",
    "Severity",
    "Stream",
    "TruckConfig",
    "TruckStats",
    "message_digest",
    "parse_lift_event",
    "parse_receipt",
    "receipt_payload",
]


class Stream(StrEnum):
    """The waste stream a truck collects on a round (French: flux)."""

    recyclables = "recyclables"  # bac jaune / emballages
    glass = "glass"  # verre
    residual = "residual"  # ordures ménagères résiduelles
    biowaste = "biowaste"  # biodéchets
    paper = "paper"  # papiers


class _Wire(BaseModel):
    # Tolerant reader: unknown fields from a newer minor version are ignored, not rejected.
    # No NaN/Infinity anywhere: they are not JSON, compare false with every bound, and end as
    # garbage in averages and rates.
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True, allow_inf_nan=False)


def _in_range(value: datetime) -> datetime:
    """UTC, between EARLIEST and LATEST (the converted value: an offset can move the year)."""
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise ValueError(f"{value.isoformat()} is outside {EARLIEST.year}..{LATEST.year - 1}") from None
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"{value.isoformat()} is outside {EARLIEST.year}..{LATEST.year - 1}")
    return value


_Time = Annotated[AwareDatetime, AfterValidator(_in_range)]
_Text64 = Annotated[str, Field(min_length=1, max_length=64, pattern=TEXT_PATTERN)]
_Count = Annotated[int, Field(ge=0, le=MAX_ITEMS)]
_Counter = Annotated[int, Field(ge=0, le=MAX_COUNTER)]


class GpsFix(_Wire):
    """A position fix in WGS84 at the time of the lift."""

    lat: float = Field(ge=-90, le=90, description="Latitude, decimal degrees (WGS84)")
    lon: float = Field(ge=-180, le=180, description="Longitude, decimal degrees (WGS84)")
    accuracy_m: float | None = Field(default=None, ge=0, le=10_000, description="Horizontal accuracy, metres")
    heading_deg: float | None = Field(default=None, ge=0, lt=360, description="Course over ground, degrees")
    fix_at: _Time | None = Field(default=None, description="When the fix was taken (UTC)")


class ErrorItem(_Wire):
    """One kind of wrong item found in a lift."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    class_: str = Field(alias="class", min_length=1, max_length=64, pattern=TEXT_PATTERN,
                        description="Model class name")
    count: int = Field(ge=1, le=MAX_ITEMS, description="Items of this class in the lift")
    category: str = Field(min_length=1, max_length=64, pattern=CATEGORY_PATTERN,
                          description="Error category used in reports (the rules' own words)")
    severity: Severity

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


_Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the file, hex")]


class ModelInfo(_Wire):
    """The model that judged the lift: name and version from its ONNX metadata; since 1.2 also the
    file's SHA-256, which tells apart the INT8 and FP32 files of one version."""

    name: str = Field(min_length=1, max_length=128, pattern=TEXT_PATTERN)
    version: str = Field(min_length=1, max_length=64, pattern=TEXT_PATTERN)
    sha256: _Sha256 | None = Field(default=None, description="SHA-256 of the ONNX file that ran (since 1.2)")


class ModelCheck(_Wire):
    """The truck's start-up self-check of a quantised model against its FP32 original
    (``vision.selfcheck``): ``fallback`` means it disagreed, and the truck runs the FP32 model."""

    status: Literal["passed", "fallback", "skipped"]
    configured: str = Field(min_length=1, max_length=128, pattern=TEXT_PATTERN, description="Model file configured")
    running: str = Field(min_length=1, max_length=128, pattern=TEXT_PATTERN, description="Model file running")
    disagreement: float | None = Field(default=None, ge=0, le=1, description="0 = same detections, 1 = none shared")
    threshold: float = Field(ge=0, le=1, description="Largest disagreement that keeps the quantised model")
    photos: int = Field(default=0, ge=0, le=MAX_ITEMS, description="Photos compared")
    reason: str | None = Field(default=None, max_length=300, description="Why the check was skipped")


class ModelRef(_Wire):
    """A model of the server's registry, named by the SHA-256 of its ONNX file (``trivue models publish``)."""

    sha256: _Sha256
    name: str = Field(min_length=1, max_length=128, pattern=TEXT_PATTERN)
    version: str = Field(min_length=1, max_length=64, pattern=TEXT_PATTERN)
    reference: _Sha256 | None = Field(default=None, description="FP32 model an INT8 one is self-checked against")


class ModelUpdate(_Wire):
    """The truck's last model change (heartbeat): ``installed``, or ``refused`` with the reason and the
    old model still running; ``downloading`` and ``ready`` (checked, swapped at the next lift) between."""

    sha256: _Sha256
    state: Literal["downloading", "ready", "installed", "refused"]
    reason: str | None = Field(default=None, max_length=300, description="Why the model was refused")
    at: _Time


class EvidenceReason(StrEnum):
    """Why a truck kept a lift's photo: the lift was contaminated, drawn in the random sample of clean lifts
    (``evidence.sample_clean_rate``), the model was unsure of an item (``evidence.uncertain``), or (1.4) the
    lift turned the camera's view unusable (``view``: what the camera saw, for the technician)."""

    contaminated = "contaminated"
    sample = "sample"
    uncertain = "uncertain"
    view = "view"


class EvidenceBox(_Wire):
    """One detection on the photo: model class, confidence and box, as fractions of the photo's
    width and height (the same box whatever size the photo was re-encoded to)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, allow_inf_nan=False)

    class_: str = Field(alias="class", min_length=1, max_length=64, pattern=TEXT_PATTERN,
                        description="Model class name")
    confidence: float = Field(ge=0, le=1, description="Detector confidence")
    x1: float = Field(ge=0, le=1, description="Left edge, fraction of the width")
    y1: float = Field(ge=0, le=1, description="Top edge, fraction of the height")
    x2: float = Field(ge=0, le=1, description="Right edge, fraction of the width")
    y2: float = Field(ge=0, le=1, description="Bottom edge, fraction of the height")

    @model_validator(mode="after")
    def _ordered(self) -> EvidenceBox:
        if self.x2 <= self.x1 or self.y2 <= self.y1:
            raise ValueError(f"empty box ({self.x1}, {self.y1}, {self.x2}, {self.y2}): x2 > x1 and y2 > y1 needed")
        return self


class Evidence(_Wire):
    """Describes the evidence photo, which travels separately as JPEG bytes.

    Since 1.1 the photo carries no drawn boxes (it is labelling material): the model's boxes travel
    here as data. A 1.0 truck sends neither field; its photos were of contaminated lifts.
    """

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    width: int = Field(ge=1, le=8192)
    height: int = Field(ge=1, le=8192)
    reason: EvidenceReason = Field(default=EvidenceReason.contaminated, description="Why the photo was kept")
    detections: list[EvidenceBox] | None = Field(
        default=None, max_length=MAX_BOXES,
        description="The model's boxes on this photo; absent from 1.0 trucks (whose photos have them drawn)")


_Id = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
# A truck id names topics and evidence folders: at least one letter or digit, so never "." or "..".
_TruckId = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=TRUCK_ID_PATTERN)]


class LiftEvent(_Wire):
    """Everything the truck observed during one bin lift, judged against the stream's rules.

    ``score`` is the contamination score: ``sum(count * weight[severity])`` over ``errors`` with
    weights info 0, error 1, alert 3 (see ``vision.severity.SEVERITY_WEIGHTS``); 0 means clean.
    """

    schema_version: str = Field(default=SCHEMA_VERSION, max_length=16, pattern=r"^\d{1,6}\.\d{1,6}$")
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Idempotency key")
    truck_id: _TruckId
    sequence: int = Field(ge=0, le=MAX_SEQUENCE, description="Monotonic per truck; replay order")
    stream: Stream
    started_at: _Time
    ended_at: _Time
    gps: GpsFix | None = None
    bin_id: _Id | None = Field(default=None, description="RFID tag of the bin, when read")
    counts: dict[_Text64, _Count] = Field(default_factory=dict, max_length=MAX_CLASSES,
                                          description="class -> items counted")
    errors: list[ErrorItem] = Field(default_factory=list, max_length=MAX_CLASSES, description="The classes of counts "
                                    "the rules refuse: each class once, counting at most the items of counts")
    contaminated: bool
    score: float = Field(ge=0, le=MAX_SCORE, description="Contamination score (see above), finite")
    model: ModelInfo
    frames: int = Field(ge=0, le=MAX_FRAMES, description="Frames analysed during the lift")
    evidence: Evidence | None = None
    view_unusable: ViewProblem | None = Field(default=None, description="Why the view was unusable: not judged")

    @field_validator("schema_version")
    @classmethod
    def _same_major(cls, value: str) -> str:
        major = int(value.split(".", 1)[0])
        if major != SCHEMA_MAJOR:
            raise ValueError(f"unsupported schema major version {major} (this reader speaks {SCHEMA_MAJOR}.x)")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> LiftEvent:
        if self.ended_at < self.started_at:
            raise ValueError(f"ended_at {self.ended_at.isoformat()} is before started_at {self.started_at.isoformat()}")
        if self.evidence and self.evidence.reason is EvidenceReason.view and self.view_unusable is None:
            raise ValueError("evidence.reason 'view' is the photo of an unusable view: view_unusable must be set")
        check_figures(self.counts, self.errors, self.contaminated, self.score)  # errors vs counts, flag, score
        return self

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), separators=(",", ":"))

    @property
    def has_alert(self) -> bool:
        return any(e.severity is Severity.alert for e in self.errors)


class TruckStats(_Wire):
    """Periodic heartbeat of a truck (``<prefix>/<truck_id>/stats``)."""

    truck_id: _TruckId
    sent_at: _Time
    uptime_s: float = Field(ge=0)
    fps: float | None = Field(default=None, ge=0)
    inference_ms: float | None = Field(default=None, ge=0)
    outbox_depth: _Counter = 0
    outbox_photos_dropped: _Counter = Field(default=0, description="Oldest photos dropped: outbox over max_mb, "
                                            "or its disk full (since 1.2; before, photos expired too)")
    outbox_photos_expired: _Counter = Field(default=0, description="Unsent photos dropped past "
                                            "evidence.retention_days (since 1.2)")
    disk_short: bool = Field(default=False, description="The outbox's disk is full, its reserve given up: "
                             "the oldest photos make room for new lifts (since 1.2)")
    photos_too_large: _Counter = Field(
        default=0, description="Photos over evidence.max_bytes even at the lowest quality and size: lift sent without")
    photos_refused: _Counter = Field(
        default=0, description="Photos dropped after the broker refused them uplink.max_photo_attempts times")
    disk_free_mb: float | None = Field(default=None, ge=0)
    camera_clock_offset_s: float | None = Field(
        default=None, ge=-MAX_CLOCK_OFFSET_S, le=MAX_CLOCK_OFFSET_S,
        description="Seconds the camera box's clock is behind (+) or ahead of (-) the agent's, learnt from "
        "bursts seen being written; burst times are corrected by it. None until one was (since 1.3)")
    model: ModelInfo | None = None
    stream: Stream | None = None
    gps_fix_age_s: float | None = Field(default=None, ge=0)
    config_version: str | None = Field(default=None, max_length=64)
    config_refused: str | None = Field(default=None, max_length=400, description="Why the last config from the "
                                       "server was not applied, its config_version first; None once one is")
    lifts_total: _Counter = 0
    model_check: ModelCheck | None = Field(default=None, description="Start-up INT8 self-check, when one ran")
    model_sha256: _Sha256 | None = Field(default=None, description="SHA-256 of the model file running")
    model_update: ModelUpdate | None = Field(default=None, description="Last model change asked by the server")
    camera_view: CameraView | None = Field(default=None, description="The camera's view at the last lift (since 1.4)")


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
        event = LiftEvent.model_validate_json(payload)
    except ValidationError as error:
        raise SchemaError(_describe(error)) from None
    except ValueError as error:  # invalid UTF-8 and the like
        raise SchemaError(f"not a JSON document: {error}") from None
    # The default id serves whoever builds an event; read off the wire, a missing id would be a
    # fresh random one at every re-delivery, and the same lift counted each time.
    if "event_id" not in event.model_fields_set:
        raise SchemaError("event_id: Field required (the idempotency key: without it a re-sent lift "
                          "would be counted again)")
    return event


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of LiftEvent (``trivue schema``, ``docs/lift-event.schema.json``)."""
    schema = LiftEvent.model_json_schema(by_alias=True, mode="serialization")
    schema["required"] = ["event_id", *schema["required"]]  # the reader refuses a lift without it
    schema["$id"] = f"https://trivue.org/schema/lift-event/{SCHEMA_VERSION}"
    return schema


class TruckConfig(_Wire):
    """Retained message from the server (``<prefix>/<truck_id>/config``), applied live by the truck.

    It carries every setting the server sets: one absent runs the truck's settings file's value
    (a ``reset``), except ``model``, absent = keep the one running; ``config_version`` is echoed back in
    TruckStats so the server sees which configuration each truck runs.
    """

    config_version: str = Field(min_length=1, max_length=64, description="Server's version label")
    stream: Stream | None = Field(default=None, description="Stream collected from now on (route change)")
    conf: float | None = Field(default=None, ge=0, le=1, description="Detector confidence threshold")
    min_track_frames: int | None = Field(default=None, ge=1, le=100, description="Frames an item must be seen")
    model: ModelRef | None = Field(default=None, description="Model to run: downloaded, checked, swapped between lifts")
