"""The reminders API's response shapes (``/api/reminders/...``), for the OpenAPI document.

As in ``server.web.schemas``: dates and times stay the ISO strings the routes write, and extra
keys are refused so that a route and its model cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer
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
    street_id: int | None = None


class PlanOut(Out):
    since: str
    until: str
    quiet: str | None = Field(description="The quiet period the plan falls in, if any")
    street_only_lifts: int = Field(description="Contaminated lifts without a sure household, counted for "
                                   "their street (with street_id: that street's)")
    street_only_targeted: int = Field(description="Of street_only_lifts, those of the streets the plan targets "
                                      "(street items)")
    targeted_streets: int = Field(description="Streets the plan targets (street items)")
    unmatched_lifts: int = Field(description="Contaminated lifts matched to no street (0 with street_id)")
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


class CampaignPage(Out):
    items: list[CampaignSummary] = Field(description="Newest first")
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")


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
    attempts: int
    next_attempt_at: str | None = Field(description="When a temporary failure is tried again")
    planned_channel: Channel | None = Field(description="The channel a send would use (items not sent yet)")
    no_contact: bool = Field(description="Not sent yet, and no way to reach the household on file")
    file: str | None = Field(description="URL of the printed letter or notice, once sent")


class CampaignDetail(CampaignSummary):
    counts: dict[str, int] = Field(description="Items per status")
    items: list[ItemOut]  # type: ignore[assignment]  # the detail lists the items themselves
    reject_reasons: list[str]
    household_level: bool
    hidden_household_items: int
    approved_channels: dict[str, int] = Field(description="Approved items (whatever the status filter) per channel a "
                                              "send would use; `none`: no contact details (they would fail)")


class SendReport(Out):
    sent: dict[str, int] = Field(description="Items sent, per channel")
    failed: list[str] = Field(description="Items that could not be sent, with the reason")
    retrying: list[str] = Field(description="Temporary failures, tried again by a later send")
    skipped: list[str]
    recovered: list[str] = Field(description="Items an interrupted send had left in 'sending'")
    deferred: str | None = Field(description="Why nothing was sent now (a quiet period), if so")
    waiting: list[str] = Field(default_factory=list,
                               description="SMS items held until the sending hours (still approved)")
    remaining: int = Field(default=0, description="Due items left for the next call: a request sends for about "
                                                  "20 s at most; call again until 0")
    files: list[str] = Field(description="PDFs to print (letters, street notices)")


class RetryReport(SendReport):
    requeued: list[int] = Field(description="Items put back to approved before the send")


class TemplateList(Out):
    templates: list[str]
    categories: dict[str, str] = Field(description="Error category -> the words households read")
    folder: str | None = Field(description="The collectivité's template folder, if any")


class EffectUnit(Out):
    group: str = Field(description="targeted, control or household")
    unit: str
    lifts_before: int
    contaminated_before: int
    rate_before: float | None
    lifts_after: int
    contaminated_after: int
    rate_after: float | None


class EffectReport(BaseModel):
    """Before/after of the targeted streets against matched untargeted ones (difference in
    differences); a campaign not yet sent has only ``campaign``, ``status`` (not_sent) and ``text``.
    The analysis blocks (estimate, groups, intervals, balance, matching, series) are described in
    docs/reminders.md."""

    model_config = ConfigDict(extra="allow")

    campaign: int
    status: str = Field(description="not_sent, too_few, unbalanced, decrease, increase or inconclusive")
    text: str = Field(description="The verdict in French, as the page shows it")
    name: str | None = None
    cut_off: str | None = None
    washout_days: int | None = None
    windows: dict[str, list[str]] | None = None
    partial: bool | None = None
    estimate: dict[str, object] | None = None
    groups: dict[str, dict[str, object]] | None = None
    intervals: dict[str, list[float] | None] | None = None
    balance: dict[str, object] | None = None
    matching: dict[str, object] | None = None
    matches: dict[str, list[str]] | None = None
    series: dict[str, list[object] | int] | None = Field(default=None, description=(
        "Weeks around the send, each group's rate (none from fewer than `min_lifts` lifts) and lifts"))
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
    imported: int = Field(description="New households")
    updated: int = Field(description="Households already on file, their details replaced")
    refused: int
    errors: list[str] = Field(description="Refused lines, with their line number and reason")
    unknown_columns: list[str]
    encoding: str = Field(description="The encoding the file was read with: UTF-8, UTF-8 (BOM), Windows-1252 "
                                      "(French Excel's CSV), ISO 8859-15, UTF-16, Mac Roman")
    delimiter: str = Field(description="The separator found in the header line: ; , or a tab")


class OptedOut(Out):
    key: str
    opted_out: bool
    known: bool | None = Field(description="Whether anything but the opposition names the key (address or bin in "
                                           "the registry, lift, contact, reminder); false: recorded in advance, "
                                           "maybe a typo; null: not said (a manager, household level off)")
    detail: str | None = Field(default=None, description="Said when known is false or null")


class OptedIn(Out):
    key: str = Field(description="The key as stored (address:03 is address:3)")
    opted_out: bool = Field(description="Always false: the opposition is lifted")
    detail: str = Field(description="From when reminders resume: the next campaign plan")


class OptOutRow(Out):
    key: str
    at: str = Field(description="When the opposition was recorded (UTC)")
    by: str = Field(description="Who recorded it (the audit log's actor)")
    note: str | None = Field(description="The request's reference, as typed when it was recorded")


class Erased(Out):
    key: str
    contacts: int
    items: int
    letters: int = Field(description="Letter PDFs deleted from <data_dir>/reminders")
    opted_out: int
    letters_missing: list[str] = Field(default_factory=list, description="letters of the household not deleted: "
                                       "not found, or outside the server's folder (where, and why)")
    dead_letters: int = Field(default=0, description="Dead letters naming the household's bins whose payload was "
                              "emptied (a refused lift's, its photo's)")
    route_sheets: int = Field(default=0, description="Route sheets in <data_dir>/reminders that listed the household: "
                              "rewritten without it, or deleted with nobody left to visit")
    route_sheets_missing: list[str] = Field(default_factory=list, description="route sheets that listed the "
                                            "household, not rewritten: not found, or outside the server's folder")


class HouseholdAccess(Out):
    """Everything held about one household (right of access, art. 15), keys in French: the file is
    for the household to read (``server.reminders.access``)."""

    foyer: str
    produit_le: str = Field(description="Local time with its offset, as every time in the report")
    fuseau_horaire: str = Field(description="The collectivité's time zone (TRIVUE_TIMEZONE): lifts' times are local")
    par: str
    adresse: dict[str, Any] | None
    bacs_au_registre: list[dict[str, Any]]
    contact: dict[str, Any] | None
    opposition: dict[str, Any] | None
    levées: list[dict[str, Any]] = Field(description="Lifts of the household's bins, and those placed at its address "
                                                  "by the registry or by a fix as sure as min_address_confidence")
    levées_non_attribuées: int = Field(description="Lifts placed at the address by a vaguer fix (maybe a neighbour's, "
                                                   "art. 15-4): counted, not detailed")
    messages_refusés: list[dict[str, Any]] = Field(description="Dead letters naming the household's bins (its "
                                                   "tag, or the tags the registry places at its address)")
    rappels: list[dict[str, Any]]
    journal_d_audit: list[dict[str, Any]]


class PrintCommune(Out):
    postcode: str
    commune: str = Field(description="in capitals without accents, as La Poste reads it")
    letters: int
    first: int = Field(description="position of the commune's first letter in the print file (1 = first)")


class PrintRunOut(Out):
    campaign_id: int
    file: str
    letters: int
    pages: int
    blank_pages: int = Field(description="blank backs so that every letter starts on a new sheet (recto verso)")
    sheets: int
    recto_verso: bool
    order: str
    communes: list[PrintCommune]
    left_out: list[str] = Field(description="letters not in the file, and why (opposition, erasure, file missing)")
    only_new: bool = Field(False, description="only the letters never put in a print file before")
    already_printed: int = Field(0, description="the campaign's letters put in an earlier print file: left out "
                                                "with only_new, in this file again without it")


# What a household-level route answers while the server's household_level is off (server.web.privacy).
HOUSEHOLD_OFF: dict[int | str, dict[str, Any]] = {409: {
    "description": "Household level off (household_level: false): the route names households; an admin must "
                   "enable it"}}
