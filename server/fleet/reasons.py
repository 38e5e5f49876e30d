"""Why a rollout advanced, halted or was rolled back: a code with its parameters, and its English sentence.

The code and parameters are what the API gives: the dashboard words them in the reader's language
(``rollout.reason.<code>`` in ``templates/i18n``). The English sentence, written here from the same
code and parameters, is stored beside them for the CLI (``trivue models list``) and the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vision.refusals import refusal_kind


class ReasonCode(StrEnum):
    superseded = "superseded"  # {name, version}: the model of the rollout that took over
    confirmed = "confirmed"  # {actor}: an admin sent the rest of the fleet
    canary_refused = "canary_refused"  # {truck, detail, refusal}: the truck's words, their kind (refusal_kind)
    ingest_refused = "ingest_refused"  # {count}: messages of the canaries refused by the ingest
    canaries_clean = "canaries_clean"  # {lifts, counts}: every canary sent enough lifts, none refused
    rolled_back = "rolled_back"  # {actor, unknown}: trucks whose previous model is unknown
    other = "other"  # a reason stored before codes existed (migration 0007) that it did not recognise


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    params: dict[str, Any]

    @property
    def text(self) -> str:
        """The English sentence, as the CLI and the audit log have always shown it."""
        p = self.params
        match self.code:
            case ReasonCode.superseded:
                return f"superseded by a rollout of {p['name']} {p['version']}"
            case ReasonCode.confirmed:
                return f"confirmed by {p['actor']}"
            case ReasonCode.canary_refused:
                return f"canary {p['truck']} refused the model: {p['detail']}"
            case ReasonCode.ingest_refused:
                return (f"ingest refused {p['count']} message(s) from the canaries since the rollout began "
                        "(see dead letters)")
            case ReasonCode.canaries_clean:
                return f"every canary sent at least {p['lifts']} lifts with the model, none refused: {p['counts']}"
            case ReasonCode.rolled_back:
                unknown = p.get("unknown") or []
                return f"rolled back by {p['actor']}" + (f"; previous model unknown for {unknown}" if unknown else "")
        raise ValueError(f"no sentence for {self.code}: only migrated reasons are 'other', with their text")


def superseded(name: str, version: str) -> Reason:
    return Reason(ReasonCode.superseded, {"name": name, "version": version})


def confirmed(actor: str) -> Reason:
    return Reason(ReasonCode.confirmed, {"actor": actor})


def canary_refused(truck: str, detail: str | None) -> Reason:
    return Reason(ReasonCode.canary_refused, {"truck": truck, "detail": detail, "refusal": refusal_kind(detail)})


def ingest_refused(count: int) -> Reason:
    return Reason(ReasonCode.ingest_refused, {"count": count})


def canaries_clean(lifts: int, counts: dict[str, int]) -> Reason:
    return Reason(ReasonCode.canaries_clean, {"lifts": lifts, "counts": counts})


def rolled_back(actor: str, unknown: list[str]) -> Reason:
    return Reason(ReasonCode.rolled_back, {"actor": actor, "unknown": unknown})
