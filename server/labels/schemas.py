"""The labelling API's request and response shapes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Action = Literal["accept", "delete", "move", "add", "unusable", "done", "undo"]
Status = Literal["todo", "done", "unusable"]
Reason = Literal["contaminated", "sample", "uncertain"]


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DecisionIn(BaseModel):
    """One decision on a photo. Coordinates are fractions of the photo (0 to 1), top-left origin."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    action: Action
    box_id: int | None = Field(default=None, ge=1, le=10_000, description="accept, delete, move")
    class_: str | None = Field(default=None, alias="class", max_length=64, description="add, move (new class)")
    x1: float | None = Field(default=None, ge=0, le=1)
    y1: float | None = Field(default=None, ge=0, le=1)
    x2: float | None = Field(default=None, ge=0, le=1)
    y2: float | None = Field(default=None, ge=0, le=1)
    version: int | None = Field(default=None, ge=0, description="The photo's version the decision was taken on "
                                "(the photo's ``version``): refused (409) if someone else changed the photo since; "
                                "left out, the decision applies to the photo as it stands")

    @model_validator(mode="after")
    def _whole_box(self) -> DecisionIn:
        given = [v is not None for v in (self.x1, self.y1, self.x2, self.y2)]
        if any(given) and not all(given):
            raise ValueError("a box needs all of x1, y1, x2, y2")
        return self

    def xyxy(self) -> tuple[float, float, float, float] | None:
        if self.x1 is None or self.y1 is None or self.x2 is None or self.y2 is None:
            return None
        return (self.x1, self.y1, self.x2, self.y2)


class Box(Out):
    id: int
    class_: str = Field(alias="class", serialization_alias="class")
    x1: float
    y1: float
    x2: float
    y2: float
    origin: Literal["model", "human"]
    state: Literal["pending", "accepted", "deleted"]
    model_class: str | None = None
    confidence: float | None = None
    edited: bool = False

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Photo(Out):
    event_id: str
    truck_id: str
    day: str
    stream: str
    reason: Reason
    status: Status
    model_version: str
    annotator: str | None
    width: int
    height: int
    image_url: str
    expires_on: str = Field(description="The day the photo (and its labels) are deleted")
    boxes: list[Box]
    version: int = Field(description="Changes with every decision: send it back with a decision to be told (409) "
                         "when someone else changed the photo in between")
    overrule_reason: str | None = Field(default=None, description="Set when a manager overruled the lift's "
                                        "judgement: why the model was wrong (such photos come first in the queue)")


class QueueItem(Out):
    event_id: str
    status: Status


class Queue(Out):
    total: int = Field(description="Photos matching the filters")
    done: int = Field(description="Of which labelled (done or unusable)")
    items: list[QueueItem]


class ClassOut(Out):
    name: str
    label: str
    category: str


class LabelRefusal(BaseModel):
    """A refused photo or decision: the English sentence, and its code and parameters for a page to
    word in its reader's language (``ann.refusal.<code>``)."""

    detail: str = Field(description="What was refused and why, in English")
    code: str = Field(description="Why, for a machine: nothing_to_undo, undo_after_other, changed, undone, "
                      "photo_expired, photo_gone, no_photo, old_truck, unknown_class, box_outside, box_empty, "
                      "box_too_small, no_box, move_needs, add_needs, too_many_boxes, unknown_action")
    params: dict[str, Any] = Field(description="The refusal's values by code: who, action, at (ISO time) for "
                                   "changed and undo_after_other; on, days for photo_expired; class, box...")
