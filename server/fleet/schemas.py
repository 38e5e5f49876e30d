"""The fleet API's request and response shapes (OpenAPI)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.fleet.models import RolloutState
from server.fleet.reasons import ReasonCode
from server.web.schemas import TruckConfig
from vision.schema import Stream


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TruckConfigIn(BaseModel):
    """What an admin may change on a truck remotely (see ``vision.schema.TruckConfig``)."""

    model_config = ConfigDict(extra="forbid")

    stream: Stream | None = Field(default=None, description="Stream collected from now on")
    # Strict: JSON numbers only. `true` was read as conf 1.0 (the truck then detects nothing, and every
    # lift counts clean without a word) and as 1 frame; "0.4" as 0.4. 0 and 1 stay allowed, as in
    # the truck's own settings file (edge.config) and the wire's TruckConfig.
    conf: float | None = Field(default=None, ge=0, le=1, strict=True, allow_inf_nan=False,
                               description="Detector confidence threshold, 0 to 1")
    min_track_frames: int | None = Field(default=None, ge=1, le=100, strict=True,
                                         description="Frames an item must be seen, 1 to 100")
    model: str | None = Field(default=None, min_length=8, max_length=64, pattern=r"^[0-9a-f]+$",
                              description="sha256 (or a unique prefix) of a published model to run")
    reset: list[Literal["stream", "conf", "min_track_frames"]] = Field(
        default_factory=list, max_length=3,
        description="Settings removed from the stored config (null means unchanged): the truck runs its own "
                    "settings file's value again as soon as it reads the config (the stream from its next lift)")

    @model_validator(mode="after")
    def _set_or_reset(self) -> TruckConfigIn:
        if both := sorted(k for k in self.reset if getattr(self, k) is not None):
            raise ValueError(f"{', '.join(both)}: both set and reset")
        return self


class ConfigRefusal(Out):
    config_version: str = Field(description="The config the truck refused, as its heartbeat says")
    reason: str = Field(description="Why, in the truck's words")
    carried: list[str] = Field(description="Settings of this config kept from the stored one while the truck's "
                                           "last word is that refusal: the value it refused may be among them "
                                           "(set it anew, or remove it with reset)")


class TruckConfigAnswer(TruckConfig):
    """The config as stored and published, and the truck's refusal it may carry over."""

    refused: ConfigRefusal | None = Field(default=None, description="Absent unless settings are carried over "
                                                                     "while the truck refuses its configs")


class Model(Out):
    sha256: str
    name: str
    version: str
    quantised: bool = Field(description="INT8: trucks check it against the FP32 model of its version")
    names: list[str] = Field(description="Class names, in the model's order")
    imgsz: list[int] = Field(description="Input size: height, width")
    metrics: dict[str, Any] = Field(description="Validation metrics recorded in the ONNX metadata")
    size_bytes: int
    published_at: str
    published_by: str
    url: str = Field(description="Where trucks download it (truck token)")
    card: str | None = Field(default=None, description="The model card, Markdown (one model only)")


class ModelList(Out):
    models: list[Model] = Field(description="Newest first")


class RolloutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    canary: int = Field(ge=1, le=10_000, description="Trucks that get the model first")
    canary_lifts: int | None = Field(default=None, ge=1, le=100_000,
                                     description="Lifts each canary sends before the rest follow "
                                                 "(default: the server's rollout_canary_lifts)")


class Rollout(Out):
    id: int
    sha256: str
    name: str | None
    version: str | None
    state: RolloutState
    canary: list[str]
    rest: list[str]
    canary_lifts: int
    lifts: dict[str, int] = Field(description="Lifts each canary has sent with the model since the rollout began")
    reason: str | None = Field(description="Why it advanced, halted or was rolled back, in English (CLI, audit)")
    reason_code: ReasonCode | None = Field(description="The reason's code, for a sentence in the reader's language; "
                                                       "'other': a reason stored before codes, see reason")
    reason_params: dict[str, Any] | None = Field(description="The reason's parameters, by code: superseded "
                                                             "{name, version}; confirmed {actor}; canary_refused "
                                                             "{truck, detail, refusal}; ingest_refused {count}; "
                                                             "canaries_clean {lifts, counts}; rolled_back "
                                                             "{actor, unknown}")
    created_at: str
    created_by: str
    promoted_at: str | None
    promoted_by: str | None
    ended_at: str | None
    offline_canaries: list[str] = Field(description="At the canary stage: the canaries not online, or silent for "
                                                    "15 min (picked when too few trucks were online); else empty")
    stalled: bool = Field(description="At the canary stage, a canary short of its lifts has not been heard from "
                                      "for stall_after_s: the rollout waits on it (confirm, or roll out anew)")
    stalled_canaries: list[str] = Field(description="Those canaries")
    stall_after_s: float = Field(description="The server's rollout_stall_after_s")


class RolloutList(Out):
    rollouts: list[Rollout] = Field(description="Newest first")


class Rollback(Out):
    rollout: Rollout
    unknown_previous: list[str] = Field(description="Trucks left as they are: their previous model is unknown")


