"""The reminders API's response shapes (``/api/reminders/...``), for the OpenAPI document.

As in ``server.web.schemas``: dates and times stay the ISO strings the routes write, and extra
keys are refused so that a route and its model cannot drift apart unnoticed.
"""

from __future__ import annotations

from pydantic import Field, model_serializer
from pydantic.functional_serializers import SerializerFunctionWrapHandler

from server.reminders.models import Channel, ItemKind, ItemStatus
from server.web.schemas import Out


class PlanTarget(Out):
    kind: ItemKind
    level: int
    action: str
    key: str = Field(description="address:<id>, bin:<rfid> or street:<id>")
    label: str
    street_id: int | None
    lifts: int
    contaminated: int
    categories: dict[str, int]
    photos: int
    reason: str


class PlanSkip(Out):
    key: str
    label: str
    reason: str


class PlanOut(Out):
    since: str
    until: str
    quiet: str | None = Field(description="The quiet period the plan falls in, if any")
    street_only_lifts: int
    unmatched_lifts: int
    targets: list[PlanTarget]
    skipped: list[PlanSkip]


class CampaignSummary(Out):
    id: int
    name: str
    created_at: str
    created_by: str
    since: str
    until: str
    started_at: str | None = Field(description="First send; null until then")
    items: dict[str, int] = Field(description="Items per status")


class ItemCategory(Out):
    category: str
    label: str
    lifts: int


class ItemOut(Out):
    id: int
    kind: ItemKind
    level: int
    action: str
    key: str
    label: str
    street_id: int | None
    street: str
    lifts: int
    contaminated: int
    categories: list[ItemCategory]
    photos: list[str] = Field(description="Evidence photo URLs still on file")
    reason: str
    status: ItemStatus
    reviewed_by: str | None
    reviewed_at: str | None
    review_reason: str | None
    review_note: str | None
    channel: Channel | None
    sent_at: str | None
    send_detail: str | None
    file: str | None = Field(description="URL of the printed letter or notice, once generated")


class CampaignDetail(CampaignSummary):
    counts: dict[str, int] = Field(description="Items per status")
    items: list[ItemOut]  # type: ignore[assignment]  # the detail lists the items themselves
    reject_reasons: list[str]
    household_level: bool
    hidden_household_items: int


class SendReport(Out):
    sent: dict[str, int] = Field(description="Items sent, per channel")
    failed: list[str] = Field(description="Items that could not be sent, with the reason")
    skipped: list[str]
    deferred: str | None = Field(description="Why nothing was sent now (a quiet period), if so")
    files: list[str] = Field(description="PDFs to print (letters, street notices)")


class TemplateList(Out):
    templates: list[str]
    categories: dict[str, str] = Field(description="Error category -> the words households read")
    folder: str | None = Field(description="The collectivité's template folder, if any")


class PeriodFigures(Out):
    lifts: int
    contaminated: int
    rate: float | None
    ci: list[float] = Field(description="95 % Wilson interval [low, high]")


class EffectGroup(Out):
    units: int
    before: PeriodFigures
    after: PeriodFigures
    change: float | None


class EffectUnit(Out):
    group: str = Field(description="targeted, control or household")
    unit: str
    lifts_before: int
    contaminated_before: int
    rate_before: float | None
    lifts_after: int
    contaminated_after: int
    rate_after: float | None


class EffectReport(Out):
    """Before/after of the targeted streets against matched untargeted ones; a campaign not yet sent
    has only ``campaign``, ``status`` (not_sent) and ``text``."""

    campaign: int
    status: str = Field(description="not_sent, too_few, decrease, increase or inconclusive")
    text: str
    name: str | None = None
    cut_off: str | None = None
    windows: dict[str, list[str]] | None = None
    partial: bool | None = None
    groups: dict[str, EffectGroup] | None = None
    intervals: dict[str, list[float] | None] | None = None
    matches: dict[str, list[str]] | None = None
    units: list[EffectUnit] | None = None

    @model_serializer(mode="wrap")
    def _present_fields_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        return {key: value for key, value in handler(self).items() if value is not None}


class FalseDetectionOut(Out):
    event_id: str
    truck_id: str
    stream: str
    model_version: str | None
    classes: str = Field(description="Model classes, ;-separated")
    categories: str = Field(description="Error categories, ;-separated")
    evidence_sha256: str | None
    evidence_path: str | None
    note: str | None
    reported_by: str
    reported_at: str
    item_id: int | None


class ContactOut(Out):
    key: str
    name: str | None
    email: str | None
    phone: str | None
    postal_address: str | None


class ContactImportOut(Out):
    imported: int
    errors: list[str] = Field(description="Refused rows, with their line and reason")


class OptedOut(Out):
    key: str
    opted_out: bool


class Erased(Out):
    key: str
    contacts: int
    items: int
    opted_out: int
