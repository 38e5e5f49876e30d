"""The API's response shapes: what every JSON route returns, so that the OpenAPI document shows it.

Timestamps stay ISO 8601 strings as the routes have always written them (``+00:00``, never
re-encoded); extra keys are refused, so a route that grows a field without its model fails its
tests instead of silently dropping the field.
"""

from __future__ import annotations

from typing import Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_serializer
from pydantic.functional_serializers import SerializerFunctionWrapHandler

from server.ingest.models import TruckStatus
from server.web.accounts import Role
from vision.refusals import REFUSAL_KINDS
from vision.schema import ErrorItem, ModelRef, Stream, TruckStats


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(Out):
    status: Literal["ok", "degraded"] = Field(description="degraded: database error or broker disconnected (503)")
    database: str = Field(description="ok, or error: <exception type>")
    schema_revision: str | None
    broker: Literal["connected", "disconnected", "disabled"]
    version: str
    dev: bool


class Rate(Out):
    """Contaminated lifts among lifts, with the 95 % Wilson interval of the rate."""

    lifts: int
    contaminated: int
    rate: float | None = Field(description="contaminated / lifts; null without lifts")
    ci_low: float
    ci_high: float


class TopError(Out):
    category: str
    lifts: int
    items: int


class StreetStats(Rate):
    street_id: int
    name: str | None
    commune: str | None
    alerts: int = Field(description="Lifts with an alert (battery, gas cylinder...)")
    top_errors: list[TopError]


class Unmatched(Out):
    lifts: int
    contaminated: int


class StreetList(Out):
    streets: list[StreetStats] = Field(description="Worst rate first")
    unmatched: Unmatched = Field(description="Lifts matched to no street")


class DayRate(Rate):
    day: str = Field(description="Local collection day, YYYY-MM-DD")


class StreetError(Out):
    stream: str
    category: str
    severity: str
    lifts: int
    items: int
    share_of_lifts: float | None


class StreetDetail(Rate):
    street_id: int
    name: str | None
    commune: str | None
    length_m: float | None
    streams: dict[str, Rate]
    daily: list[DayRate]
    errors: list[StreetError]


class ModelName(Out):
    name: str
    version: str
    sha256: str | None = Field(default=None, description="The ONNX file that judged the lift (wire 1.2); "
                               "null for older trucks: its INT8 and FP32 files share name and version")


class LiftGps(Out):
    lat: float
    lon: float
    accuracy_m: float | None
    heading_deg: float | None


class LiftStreet(Out):
    street_id: int
    name: str | None
    commune: str | None
    segment_id: int | None
    distance_m: float | None
    confidence: float | None


class LiftAddress(Out):
    address_id: int
    label: str | None
    distance_m: float | None


class PhotoBox(Out):
    """A model box on the photo, as fractions of its width and height (wire 1.1)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    class_: str = Field(alias="class", serialization_alias="class")
    confidence: float
    x1: float
    y1: float
    x2: float
    y2: float


class LiftPhoto(Out):
    url: str
    width: int
    height: int
    sha256: str
    size_bytes: int
    reason: Literal["contaminated", "sample", "uncertain", "view"] | None = Field(
        default=None, description="Why the truck kept the photo; null for lifts stored before wire 1.1")
    boxes: list[PhotoBox] = Field(default_factory=list, description="Empty for 1.0 trucks: boxes drawn on the photo")


class LiftOverrule(Out):
    at: str
    by: str | None = Field(description="Who overruled it, e.g. user:name")
    reason: str | None


class Lift(Out):
    """One lift; ``bin_id``, ``gps`` and ``address`` are null while the household level is off."""

    event_id: str
    truck_id: str
    sequence: int
    stream: str
    started_at: str
    ended_at: str
    day: str
    received_at: str
    contaminated: bool
    has_alert: bool
    score: float
    counts: dict[str, int]
    errors: list[ErrorItem]
    frames: int
    bin_id: str | None
    model: ModelName
    gps: LiftGps | None
    street: LiftStreet | None
    address: LiftAddress | None
    evidence: LiftPhoto | None
    evidence_expected: bool
    overruled: LiftOverrule | None = Field(description="Set when a manager judged the truck wrong: the fields "
                                           "above stay as the truck sent them, every figure counts the lift clean")
    view_unusable: str | None = Field(default=None, description="Why the camera's view was unusable (dark, bright, "
                                      "flat, blurred, frozen; wire 1.4): the lift was not judged and counts in no "
                                      "street figure, the fields above stay as the truck sent them")


class OverruleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=300, pattern=r"\S",
                        description="Why the truck's judgement is wrong; shown to managers and annotators: "
                                    "name no one")


class LiftPage(Out):
    items: list[Lift] = Field(description="Newest first")
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


class TruckConfig(Out):
    """A truck's remote configuration as published (retained) to it; unset fields are left out."""

    config_version: str
    stream: Stream | None = None
    conf: float | None = None
    min_track_frames: int | None = None
    model: ModelRef | None = Field(default=None, description="The model the truck is asked to run (server.fleet)")

    @model_serializer(mode="wrap")
    def _set_fields_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        return {key: value for key, value in handler(self).items() if value is not None}


class DuplicateAgents(Out):
    """Two agents or more send heartbeats under one truck id (a copied configuration)."""

    seen_at: str = Field(description="When a heartbeat last showed it (server time)")
    started_at: list[str] = Field(description="When each agent started (sent_at - uptime_s of its heartbeats)")


class Truck(Out):
    truck_id: str
    status: TruckStatus = Field(description="The truck's last status message: online (on connect), offline "
                                "(last will: connection lost), stopped (clean exit), unknown (none yet)")
    state: TruckStatus = Field(description="status, or online when the truck was heard from after that message")
    online: bool = Field(description="state is online")
    silent: bool = Field(description="Not heard from for 15 minutes, or never, unless stopped: the fleet page's "
                         "silent flag (server clock), counted by trivue_trucks_silent")
    duplicate_agents: DuplicateAgents | None = Field(
        description="Set while two agents or more were heard under this id in the last 15 minutes")
    status_at: str | None
    last_seen_at: str | None
    stats: TruckStats | None = Field(description="The truck's last stats message")
    stats_at: str | None
    config: TruckConfig | None
    lifts_7d: int = Field(description="The truck's lifts started in the last 7 days (by started_at)")
    model_refusal: str | None = Field(
        description="Kind of the model change the truck refused (stats.model_update.reason's first words): "
        + ", ".join(REFUSAL_KINDS) + "; null when nothing is refused or the truck's words are of no known kind")
    view_photo: str | None = Field(default=None, description="While the camera view is unusable: event id of the "
                                   "latest photo of it since it turned (evidence.jpg, managers), else null")
    view_photo_at: str | None = Field(default=None, description="When view_photo's lift started (ISO 8601), "
                                      "else null")


class TruckList(Out):
    trucks: list[Truck]


class AuditItem(Out):
    id: int
    at: str
    actor: str
    action: str
    target: str | None
    detail: str | None = Field(description="As its writer wrote it (English), unchanged")
    detail_code: str | None = Field(default=None, description="The detail's known form, for a page to word it in "
                                    "its reader's language (audit.detail.<code>); null when of no known form")
    detail_params: dict[str, str] | None = Field(default=None, description="The values read out of the detail")


class AuditPage(Out):
    items: list[AuditItem] = Field(description="Newest first")


class DeadLetterItem(Out):
    id: int
    received_at: str
    topic: str
    truck_id: str | None
    reason: str
    detail: str
    payload_size: int
    replayable: bool = Field(description="The whole payload is kept: `trivue dead-letters replay` feeds it again")
    payload_head: str | None = Field(description="First 512 bytes; null while the household level is off")


class HeldPayloads(Out):
    """Dead letters kept whole beyond their first 4 KiB, for a replay (an unregistered truck's photos)."""

    letters: int
    bytes: int
    limit_bytes: int = Field(description="dead_letter_held_bytes: beyond it a letter keeps its first 4 KiB")


class DeadLetters(Out):
    counts: dict[str, int] = Field(description="Dead letters stored, per reason")
    held: HeldPayloads
    items: list[DeadLetterItem]


class Me(Out):
    name: str
    role: Role
    kind: str = Field(description="user, token or dev")
    household_level: bool
    communes: list[str] | None = Field(default=None, description="The codes INSEE a mairie's account is limited "
                                       "to (docs/api.md, « Commune-scoped accounts »); null: every commune")


class ErrorRate(Rate):
    street_id: int
    category: str


class ErrorRates(Out):
    items: list[ErrorRate]


class Alert(Out):
    id: int = Field(description="Lift id: resume the stream after it")
    event_id: str
    truck_id: str
    stream: str
    started_at: str
    received_at: str = Field(description="When the server stored it: long after started_at, the truck was out "
                                         "of coverage and the alert is late (the crew was warned in the cab)")
    errors: list[ErrorItem]
    street_id: int | None
    street_name: str | None
    commune: str | None


class Alerts(Out):
    items: list[Alert] = Field(description="Newest first")
    cursor: int = Field(description="Pass as ?after= to /api/alerts/stream")


class ConfidenceBin(Out):
    low: float
    high: float
    lifts: int


class AmbiguousStreet(Out):
    street_id: int
    name: str
    commune: str
    lifts: int


class DataQuality(Out):
    since: str | None = Field(description="First day counted (YYYY-MM-DD): by default the first whose raw "
                                           "lifts are all kept (retention_days): every figure counts the same lifts")
    until: str | None
    ambiguous_since: str | None = Field(description="First day of the ambiguous count: later than since when "
                                                      "since was asked before the raw lifts kept")
    dead_letters_since: str | None = Field(description="First day of the dead letters counted: the first "
                                                         "from which every kind is still kept (the shortest of "
                                                         "dead_letter_retention_days, evidence_retention_days "
                                                         "and, at street level, street_level_letter_days)")
    lifts: int
    matched: int
    unmatched: int
    unmatched_no_gps: int
    unmatched_too_far: int
    view_unusable: int = Field(description="Lifts whose camera view was unusable (dark, bright, flat, blurred, "
                                           "frozen: wire 1.4): not judged, counted in no contamination rate")
    dead_letters: int
    dead_letters_by_reason: dict[str, int]
    dead_letters_held: HeldPayloads = Field(description="Payloads held whole for a replay, today (not the period's)")
    confidence_histogram: list[ConfidenceBin]
    ambiguous: int = Field(description="Judged lifts (view_unusable null) whose street stays uncertain given "
                                       "the truck's path (street_confidence below ambiguous_threshold)")
    ambiguous_threshold: float
    ambiguous_by_street: list[AmbiguousStreet] = Field(description="Streets with the most ambiguous lifts")


class GeoFeature(Out):
    type: Literal["Feature"]
    id: int
    geometry: dict[str, object] | None = Field(description="GeoJSON LineString or MultiLineString, WGS84")
    properties: dict[str, object]


class FeatureCollection(Out):
    """GeoJSON (``application/geo+json``)."""

    type: Literal["FeatureCollection"]
    features: list[GeoFeature]


class GeoJSONResponse(JSONResponse):
    """A route's ``response_class`` for ``FeatureCollection``: the document shows the schema under the
    media type the route answers with (under ``application/json``, a client was told the wrong type)."""

    media_type = "application/geo+json"


class LoggedIn(Out):
    name: str
    role: Role
    expires_at: str


class Done(Out):
    ok: bool
