"""The fleet's tables: published models, the model each truck is asked to run, and rollouts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, BigId, UtcDateTime


class FleetModel(Base):
    """A published ONNX model; its file is ``<data_dir>/models/<sha256>.onnx``.

    ``(name, version, quantised)`` is unique: lifts name their model by name and version only, so
    one version names one trained model (the rollout counts a canary's lifts by it, and by the swap the
    canary reports when both files of the version are published), published as FP32 and, optionally,
    as its INT8 quantisation.
    """

    __tablename__ = "fleet_models"
    __table_args__ = (UniqueConstraint("name", "version", "quantised", name="uq_fleet_models_version"),)

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    quantised: Mapped[bool] = mapped_column(Boolean, doc="INT8: trucks check it against the FP32 of its version")
    names: Mapped[list[str]] = mapped_column(JSON, doc="Class names, in the model's order")
    imgsz: Mapped[list[int]] = mapped_column(JSON, doc="Input size (height, width)")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, doc="Validation metrics from the ONNX metadata")
    card: Mapped[str | None] = mapped_column(Text, doc="The model card (Markdown) published with it")
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    published_at: Mapped[datetime] = mapped_column(UtcDateTime)
    published_by: Mapped[str] = mapped_column(String(128))


class RolloutState(StrEnum):
    canary = "canary"  # the canary trucks have the model; the rest wait for K clean lifts or a confirmation
    complete = "complete"  # every truck of the rollout has been asked to run the model
    halted = "halted"  # a canary refused the model or its lifts were refused: the rest do not follow
    rolled_back = "rolled_back"  # every truck was asked to run its previous model again
    superseded = "superseded"  # a newer rollout took over before this one completed


class Rollout(Base):
    """A fleet-wide rollout of one model: canaries first, then the rest."""

    __tablename__ = "fleet_rollouts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    canary: Mapped[list[str]] = mapped_column(JSON, doc="Truck ids that get the model first")
    rest: Mapped[list[str]] = mapped_column(JSON, doc="Truck ids that follow")
    previous: Mapped[dict[str, str | None]] = mapped_column(JSON, doc="truck id -> model sha256 it ran before")
    canary_lifts: Mapped[int] = mapped_column(Integer, doc="Clean lifts each canary sends before the rest follow")
    reason: Mapped[str | None] = mapped_column(Text, doc="Why the rollout advanced, halted or was rolled back "
                                                         "(English, for the CLI and the audit log)")
    reason_code: Mapped[str | None] = mapped_column(String(32), doc="The reason's code (server.fleet.reasons)")
    reason_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, doc="The reason's parameters, by code")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(128))
    promoted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    promoted_by: Mapped[str | None] = mapped_column(String(128))
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Assignment(Base):
    """The model a truck is asked to run; published in its retained config by the server."""

    __tablename__ = "fleet_assignments"

    truck_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    reference_sha256: Mapped[str | None] = mapped_column(String(64), doc="FP32 model an INT8 one is checked against")
    previous_sha256: Mapped[str | None] = mapped_column(String(64))
    rollout_id: Mapped[int | None] = mapped_column(BigInteger)
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime)
    assigned_by: Mapped[str] = mapped_column(String(128))
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime, doc="None until published to the broker")
