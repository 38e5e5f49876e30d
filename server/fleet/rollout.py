"""Which model each truck runs: per-truck assignments, canary rollouts, promotion and rollback.

Everything here writes the database only (the CLI runs without a broker); ``publish_pending``
turns assignments into retained ``TruckConfig`` messages, called by the API at once and by
``RolloutTask`` every ``rollout_check_s`` inside ``trivue server``. The same task advances
rollouts: the rest of the fleet follows when every canary has sent ``canary_lifts`` lifts with
the new model (counted by the file each lift names, or for older trucks by its name and version:
``server.fleet.canary`` says how an INT8 and an FP32 file of one version are told apart), none
refused the model and ingest refused none of their messages since the rollout began.

The fleet is not fixed when a rollout begins: a truck that first connects (or is added to
``known_trucks``) during the canary stage joins the rest; one that joins later, never asked for a
model, gets the model of the latest complete rollout, the fleet's model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.audit import audit
from server.config import ServerSettings
from server.db import utcnow
from server.fleet import reasons
from server.fleet.canary import CLOCK_SKEW, canary_lifts
from server.fleet.liveness import known_fleet, offline
from server.fleet.locks import hold_rollouts, locked_truck
from server.fleet.models import Assignment, FleetModel, Rollout, RolloutState
from server.fleet.reasons import Reason
from server.fleet.registry import RegistryError, find, model_ref
from server.ingest.models import DeadLetter, Truck
from server.periodic import Periodic

log = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any]], None]
SYSTEM = "system"
OPEN_STATES = (RolloutState.canary.value, RolloutState.complete.value, RolloutState.halted.value)


class RolloutError(ValueError):
    """A rollout request that cannot be carried out; nothing was changed."""


def config_version(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%S.%fZ")


def running_model(session: Session, truck_id: str) -> dict[str, str] | None:
    """The model a truck was last asked to run, else the one it reports in its heartbeat.

    An assignment the truck refused is not what it runs: it kept the model it reports, and that one
    is what a rollback must put back (asking again for the refused model changes nothing)."""
    assigned = session.get(Assignment, truck_id)
    truck = session.get(Truck, truck_id)
    stats = (truck.stats or {}) if truck is not None else {}
    model = stats.get("model") or {}
    reported = ({"sha256": stats["model_sha256"], "name": model["name"], "version": model["version"]}
                if stats.get("model_sha256") and model.get("name") and model.get("version") else None)
    if assigned is None:
        return reported
    update = stats.get("model_update") or {}
    if reported is not None and update.get("state") == "refused" and update.get("sha256") == assigned.sha256:
        return reported
    return assignment_ref(assigned)


UNPROVEN = (RolloutState.canary.value, RolloutState.halted.value, RolloutState.superseded.value)


def model_to_restore(session: Session, truck_id: str) -> dict[str, str] | None:
    """What a rollback of a rollout beginning now must put back on ``truck_id``: the model it runs, unless
    a rollout that never completed (halted, superseded, or at its canary stage) put it there; then what
    the truck ran before that one. Before, a truck moved by a halted or superseded rollout went back to
    that rollout's model, never proved (halted: found bad), and stayed there."""
    assigned = session.get(Assignment, truck_id)
    earlier = session.get(Rollout, assigned.rollout_id) if assigned is not None and assigned.rollout_id else None
    if (earlier is not None and earlier.state in UNPROVEN and assigned is not None
            and assigned.sha256 == earlier.sha256 and truck_id in earlier.previous):
        return earlier.previous[truck_id]
    return running_model(session, truck_id)


def assignment_ref(row: Assignment) -> dict[str, str]:
    """The ``model`` of the truck's TruckConfig (``vision.schema.ModelRef``)."""
    ref = {"sha256": row.sha256, "name": row.name, "version": row.version}
    if row.reference_sha256:
        ref["reference"] = row.reference_sha256
    return ref


def assign(session: Session, truck_id: str, ref: dict[str, str], actor: str, rollout_id: int | None = None) -> None:
    """Ask ``truck_id`` to run the model ``ref``; published by ``publish_pending``. The caller commits."""
    locked_truck(session, truck_id)  # publish_pending must not mark this change published with an older one
    before = running_model(session, truck_id)
    row = session.get(Assignment, truck_id)
    if row is None:
        row = Assignment(truck_id=truck_id)
        session.add(row)
    if before is None or before["sha256"] != ref["sha256"]:
        row.previous_sha256 = before["sha256"] if before else None
    row.sha256, row.name, row.version = ref["sha256"], ref["name"], ref["version"]
    row.reference_sha256 = ref.get("reference")
    row.rollout_id, row.assigned_at, row.assigned_by, row.published_at = rollout_id, utcnow(), actor, None
    was = f"{before['name']} {before['version']}" if before else "unknown"
    audit(session, actor, "truck.model", truck_id, f"{ref['name']} {ref['version']} sha256 {ref['sha256']} (was "
          f"{was})" + (f", rollout {rollout_id}" if rollout_id else ""))


def publish_pending(session: Session, publish: Publish, truck_id: str | None = None) -> int:
    """Publish the retained config of every truck (or of ``truck_id``) whose assignment is not yet
    published. Commits the session's changes first, then each truck once published: a truck
    downloads its model as soon as it reads its config, and is let only once its assignment is
    committed (before, a truck that was quick got 403 and refused the model; a canary so halted its
    rollout).

    The config keeps the truck's other settings (stream, thresholds) and adds ``model``. Each truck's
    row is held from reading its stored config until that commit: a config change of the same truck
    at the same moment (which holds it too) is published with it, never dropped. A broker error
    leaves the rest pending for the next run.
    """
    query = select(Assignment.truck_id).where(Assignment.published_at.is_(None)).order_by(Assignment.truck_id)
    if truck_id is not None:
        query = query.where(Assignment.truck_id == truck_id)
    session.commit()  # the caller's changes first: what follows commits truck by truck
    done = 0
    for pending in session.scalars(query).all():
        truck = locked_truck(session, pending)
        row = session.get(Assignment, pending, populate_existing=True)
        if row is None or row.published_at is not None:  # published meanwhile (a PUT, another process)
            session.commit()
            continue
        now = utcnow()
        kept = {k: v for k, v in (truck.config or {}).items() if k not in ("config_version", "model")}
        config = {"config_version": config_version(now), **kept, "model": assignment_ref(row)}
        try:
            publish(row.truck_id, config)
        except ConnectionError as error:
            session.rollback()
            log.warning("config for %s not published yet: %s", row.truck_id, error)
            break
        truck.config, row.published_at = config, now
        session.commit()
        done += 1
    return done


def start(session: Session, settings: ServerSettings, sha: str, canary: int, actor: str,
          canary_lifts: int | None = None) -> Rollout:
    """Roll ``sha`` out: ``canary`` trucks now, the rest later. The caller commits."""
    hold_rollouts(session)  # another start at the same moment reads this one, and supersedes it
    try:
        model = find(session, sha)
    except RegistryError as error:
        raise RolloutError(str(error)) from None
    fleet = known_fleet(session, settings)
    if not fleet:
        raise RolloutError("no truck is known yet: trucks appear once they have connected (or list known_trucks)")
    if not 1 <= canary <= len(fleet):
        raise RolloutError(f"--canary {canary}: expected 1 to {len(fleet)} (the trucks known)")
    lifts = canary_lifts if canary_lifts is not None else settings.rollout_canary_lifts
    if lifts < 1:
        raise RolloutError(f"--after-lifts {lifts}: expected at least 1")
    for older in session.scalars(select(Rollout).where(Rollout.state == RolloutState.canary.value)):
        older.state, older.ended_at = RolloutState.superseded.value, utcnow()
        _explain(older, reasons.superseded(model.name, model.version))
    now = utcnow()
    rollout = Rollout(sha256=model.sha256, state=RolloutState.canary.value, canary=fleet[:canary],
                      rest=fleet[canary:], previous={t: model_to_restore(session, t) for t in fleet},
                      canary_lifts=lifts, created_at=now, created_by=actor)
    session.add(rollout)
    session.flush()  # its id, for the assignments
    for truck_id in rollout.canary:
        assign(session, truck_id, model_ref(session, model), actor, rollout.id)
    # Online trucks come first; when too few are, offline ones are canaries too: said, since the rollout
    # waits on them (server.fleet.stall flags it once they stay silent).
    silent = offline(session, rollout.canary)
    audit(session, actor, "model.rollout", model.sha256,
          f"{model.name} {model.version}: canary {rollout.canary}, then {rollout.rest} after {lifts} lifts each"
          + (f"; offline canaries {silent}: too few trucks online" if silent else ""))
    return rollout


def _explain(rollout: Rollout, reason: Reason) -> None:
    """The reason's code and parameters for the API, its English sentence for the CLI."""
    rollout.reason, rollout.reason_code, rollout.reason_params = reason.text, reason.code.value, reason.params


def _join_rest(rollout: Rollout, fleet: list[str]) -> list[str]:
    """Add to the rest the trucks of ``fleet`` the rollout does not name yet; returns them."""
    joined = [t for t in fleet if t not in rollout.canary and t not in rollout.rest]
    if joined:  # a new list: the JSON column sees an assignment, never an in-place change
        rollout.rest = [*rollout.rest, *joined]
    return joined


def _promote(session: Session, settings: ServerSettings, rollout: Rollout, actor: str, reason: Reason) -> None:
    model = session.get(FleetModel, rollout.sha256)
    assert model is not None  # published models are never deleted
    _join_rest(rollout, known_fleet(session, settings))  # trucks seen since the last round (a confirmation)
    # What the rest run now, not when the rollout began (days ago, maybe): the rollback puts this back.
    # A new dict: the JSON column sees an assignment, never an in-place change.
    rollout.previous = {**rollout.previous, **{t: model_to_restore(session, t) for t in rollout.rest}}
    for truck_id in rollout.rest:
        assign(session, truck_id, model_ref(session, model), actor, rollout.id)
    rollout.state, rollout.promoted_at, rollout.promoted_by = RolloutState.complete.value, utcnow(), actor
    _explain(rollout, reason)
    audit(session, actor, "model.promote", rollout.sha256, reason.text)


def latest(session: Session, sha: str | None = None, states: tuple[str, ...] = OPEN_STATES) -> Rollout | None:
    query = select(Rollout).where(Rollout.state.in_(states)).order_by(Rollout.id.desc()).limit(1)
    if sha is not None:
        query = query.where(Rollout.sha256 == sha)
    return session.scalar(query)


def confirm(session: Session, settings: ServerSettings, sha: str, actor: str) -> Rollout:
    """An admin's go: the rest of the fleet follows the canaries now. The caller commits."""
    hold_rollouts(session)
    try:
        model = find(session, sha)
    except RegistryError as error:
        raise RolloutError(str(error)) from None
    what = f"{model.name} {model.version}"
    rollout = latest(session, model.sha256, (RolloutState.canary.value,))
    if rollout is None:
        if (last := latest(session, model.sha256, tuple(RolloutState))) is not None:
            why = f": {last.reason}" if last.reason else ""
            raise RolloutError(f"rollout {last.id} ({what}) was {last.state.replace('_', ' ')}{why}: nothing waits "
                               "at the canary stage (to run it again, roll it out anew)")
        raise RolloutError(f"no rollout of {what} is waiting at the canary stage")
    # What halts the rollout at the task's next check (within rollout_check_s) stops an admin's go too:
    # confirmed, the rest of the fleet was asked for a model a canary had refused, and it became the
    # fleet's model, given to every truck that joins.
    if (halt := _halt_reason(session, rollout)) is not None:
        raise RolloutError(f"rollout {rollout.id} ({what}) not confirmed: {halt.text}; the rest keep their model "
                           "(roll back the canaries: trivue models rollback)")
    _promote(session, settings, rollout, actor, reasons.confirmed(actor))
    return rollout


def _refused_since(update: dict[str, Any], sha: str, since: datetime) -> bool:
    """The heartbeat's last model change is a refusal of ``sha`` made after ``since`` (not an old one)."""
    if update.get("sha256") != sha or update.get("state") != "refused":
        return False
    try:
        at = datetime.fromisoformat(str(update.get("at")).replace("Z", "+00:00"))
    except ValueError:
        return True
    return at.tzinfo is None or at >= since - CLOCK_SKEW


def _halt_reason(session: Session, rollout: Rollout) -> Reason | None:
    for truck_id in rollout.canary:
        truck = session.get(Truck, truck_id)
        update = ((truck.stats or {}) if truck is not None else {}).get("model_update") or {}
        if _refused_since(update, rollout.sha256, rollout.created_at):
            return reasons.canary_refused(truck_id, update.get("reason"))
    refused = session.scalar(select(func.count()).select_from(DeadLetter).where(
        DeadLetter.truck_id.in_(rollout.canary), DeadLetter.received_at >= rollout.created_at))
    if refused:
        return reasons.ingest_refused(refused)
    return None


def enrol(session: Session, settings: ServerSettings) -> list[str]:
    """Trucks that joined the fleet since a rollout began; returns what happened. The caller commits.

    At the canary stage they join the rest (they follow the canaries). A truck never asked for a
    model gets the model of the latest complete rollout, and is one of its rest (a rollback of it
    puts back what that truck ran before). A truck an admin gave a model keeps it."""
    fleet = known_fleet(session, settings)
    happened = []
    for rollout in session.scalars(select(Rollout).where(Rollout.state == RolloutState.canary.value)).all():
        if joined := _join_rest(rollout, fleet):
            happened.append(f"rollout {rollout.id}: {', '.join(joined)} joined the rest")
    current = latest(session, states=(RolloutState.complete.value,))
    model = session.get(FleetModel, current.sha256) if current is not None else None
    if current is None or model is None:
        return happened
    asked = set(session.scalars(select(Assignment.truck_id)))
    joined = [t for t in fleet if t not in asked]
    if joined:
        current.previous = {**current.previous, **{t: running_model(session, t) for t in joined}}
        for truck_id in joined:
            assign(session, truck_id, model_ref(session, model), SYSTEM, current.id)
        _join_rest(current, joined)
        happened.append(f"rollout {current.id}: {', '.join(joined)} joined the fleet, given "
                        f"{model.name} {model.version}")
    return happened


def advance(session: Session, settings: ServerSettings) -> list[str]:
    """Enrol the trucks that joined, then halt or promote the rollouts at the canary stage; returns what
    happened. The caller commits."""
    hold_rollouts(session)
    happened = enrol(session, settings)
    for rollout in session.scalars(select(Rollout).where(Rollout.state == RolloutState.canary.value)).all():
        reason = _halt_reason(session, rollout)
        if reason is not None:
            rollout.state, rollout.ended_at = RolloutState.halted.value, utcnow()
            _explain(rollout, reason)
            audit(session, SYSTEM, "model.halt", rollout.sha256, reason.text)
            happened.append(f"rollout {rollout.id} halted: {reason.text}")
            continue
        counts = canary_lifts(session, rollout)
        if all(n >= rollout.canary_lifts for n in counts.values()):
            promoted = reasons.canaries_clean(rollout.canary_lifts, counts)
            _promote(session, settings, rollout, SYSTEM, promoted)
            happened.append(f"rollout {rollout.id} promoted: {promoted.text}")
    return happened


def rollback(session: Session, actor: str) -> tuple[Rollout, list[str]]:
    """Put the previous model back on every truck of the latest rollout; returns it and the trucks
    whose previous model is unknown (left as they are). The caller commits.

    Only the latest rollout: once it is rolled back, a second rollback is refused rather than
    reaching for an older rollout, whose trucks the first rollback has just reassigned (it moved
    only the trucks still on that older rollout's model, splitting the fleet across two models)."""
    hold_rollouts(session)
    rollout = session.scalar(select(Rollout).order_by(Rollout.id.desc()).limit(1))
    if rollout is None:
        raise RolloutError("no rollout to roll back")
    model = session.get(FleetModel, rollout.sha256)
    what = f"rollout {rollout.id} ({model.name} {model.version})" if model else f"rollout {rollout.id}"
    if rollout.state == RolloutState.rolled_back.value:
        ended = f" on {rollout.ended_at:%Y-%m-%d %H:%M}" if rollout.ended_at else ""
        raise RolloutError(f"{what} was already rolled back{ended}: nothing to roll back (to run another model, "
                           "roll it out: trivue models rollout SHA)")
    unknown: list[str] = []
    back: list[tuple[str, dict[str, str]]] = []
    for truck_id in [*rollout.canary, *rollout.rest]:
        assigned = session.get(Assignment, truck_id)
        if assigned is None or assigned.rollout_id != rollout.id:
            continue  # never asked to change (the rest of a canary rollout), or changed since by hand
        previous = rollout.previous.get(truck_id)
        if previous is None:
            unknown.append(truck_id)
        else:
            back.append((truck_id, previous))
    if unknown and not back:  # marking it rolled back would say the trucks went back when none could
        raise RolloutError(f"{what}: nothing to roll back to: the model each of its trucks ran before is unknown "
                           f"({', '.join(unknown)} reported none); put a model on them with "
                           "PUT /api/trucks/ID/config or roll another one out")
    for truck_id, previous in back:
        assign(session, truck_id, previous, actor)
    rollout.state, rollout.ended_at = RolloutState.rolled_back.value, utcnow()
    _explain(rollout, reasons.rolled_back(actor, unknown))
    audit(session, actor, "model.rollback", rollout.sha256, rollout.reason)
    return rollout, unknown


def rollout_json(session: Session, rollout: Rollout) -> dict[str, Any]:
    model = session.get(FleetModel, rollout.sha256)
    return {"id": rollout.id, "sha256": rollout.sha256, "name": model.name if model else None,
            "version": model.version if model else None, "state": rollout.state, "canary": rollout.canary,
            "rest": rollout.rest, "canary_lifts": rollout.canary_lifts,
            "lifts": canary_lifts(session, rollout), "reason": rollout.reason,
            "reason_code": rollout.reason_code, "reason_params": rollout.reason_params,
            "created_at": rollout.created_at.isoformat(), "created_by": rollout.created_by,
            "promoted_at": rollout.promoted_at.isoformat() if rollout.promoted_at else None,
            "promoted_by": rollout.promoted_by,
            "ended_at": rollout.ended_at.isoformat() if rollout.ended_at else None}


class RolloutTask(Periodic):
    """Every ``rollout_check_s``: advance rollouts, then publish pending configs (when a broker is there)."""

    def __init__(self, settings: ServerSettings, sessions: sessionmaker[Session], publish: Publish | None) -> None:
        super().__init__("rollout check", settings.rollout_check_s, self.run_once, first_now=False)
        self.settings, self.sessions, self.publish = settings, sessions, publish

    def run_once(self) -> list[str]:
        with self.sessions() as session:
            happened = advance(session, self.settings)
            session.commit()  # before publishing: a truck's download reads its committed assignment
            if self.publish is not None:
                publish_pending(session, self.publish)
        for line in happened:
            log.info("%s", line)
        return happened
