"""How many lifts each canary truck has judged with a rollout's model (``server.fleet.rollout``).

Since wire 1.2 a lift names the ONNX file that judged it (``lifts.model_sha256``): such a lift
counts exactly when it names the rollout's file, whatever the truck's heartbeat says. Lifts of
older trucks (wire 1.0/1.1, and those stored before migration 0011) name their model by name and
version only, which the INT8 and FP32 files of a version share; for them alone the count still
infers the file from the swap time the canary reports (``_swapped_at``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.fleet.models import FleetModel, Rollout
from server.ingest.models import Lift, Truck

# Truck clocks drift: a lift or a refusal stamped up to this long before the rollout may still be
# about it. Lifts are also filtered on started_at, which the (truck_id, started_at) index serves:
# a canary's year of old lifts is never scanned every rollout_check_s.
CLOCK_SKEW = timedelta(hours=1)


def _swapped_at(session: Session, truck_id: str, sha: str) -> datetime | None:
    """When the truck began running ``sha`` (its own clock, as its lifts' ``started_at``), while its
    heartbeat says it still runs it; None otherwise."""
    truck = session.get(Truck, truck_id)
    stats = (truck.stats or {}) if truck is not None else {}
    update = stats.get("model_update") or {}
    if stats.get("model_sha256") != sha or update.get("sha256") != sha or update.get("state") != "installed":
        return None
    try:
        at = datetime.fromisoformat(str(update.get("at")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def canary_lifts(session: Session, rollout: Rollout) -> dict[str, int]:
    """Lifts each canary has sent with the rollout's model since the rollout began.

    A lift naming its file counts when that file is the rollout's. A lift naming none (wire 1.1)
    counts by name and version; when the other file of the version is published too (a canary may
    run it: INT8 v2 rolled out to trucks on FP32 v2), only such lifts begun after the swap the
    canary reports count, while it still reports running this file: never a lift of the other file,
    at the price of the first lift with the model (begun a moment before the truck stamped the swap)
    and of lifts from before a reboot."""
    counts = dict.fromkeys(rollout.canary, 0)
    model = session.get(FleetModel, rollout.sha256)
    if model is None:
        return counts
    since = (Lift.started_at >= rollout.created_at - CLOCK_SKEW, Lift.received_at >= rollout.created_at)
    query = select(Lift.truck_id, func.count()).where(*since).group_by(Lift.truck_id)
    named = query.where(Lift.truck_id.in_(rollout.canary), Lift.model_sha256 == model.sha256)
    for truck_id, count in session.execute(named):
        counts[truck_id] += count
    unnamed = query.where(Lift.model_sha256.is_(None), Lift.model_name == model.name,
                          Lift.model_version == model.version)
    sibling = session.scalar(select(func.count()).select_from(FleetModel).where(
        FleetModel.name == model.name, FleetModel.version == model.version, FleetModel.sha256 != model.sha256))
    if not sibling:
        for truck_id, count in session.execute(unnamed.where(Lift.truck_id.in_(rollout.canary))):
            counts[truck_id] += count
        return counts
    for truck_id in rollout.canary:
        if (swapped := _swapped_at(session, truck_id, model.sha256)) is not None:
            for _truck, count in session.execute(unnamed.where(Lift.truck_id == truck_id, Lift.started_at >= swapped)):
                counts[truck_id] += count
    return counts
