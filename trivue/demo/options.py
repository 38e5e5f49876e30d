"""``trivue demo``'s typed options, checked once from the command line (as ``trivue.sim.options``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from trivue.sim.options import WorldOptions


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """``trivue demo``'s options: the world, the live trucks' pace, the history, the model."""

    world: WorldOptions
    speed: float = 10.0
    history_days: int = 7
    duration: float = 0.0
    events_only: bool = False
    model: Path | None = None
    verbose: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DemoOptions:
        return cls(WorldOptions.from_args(args), args.speed, args.history_days, args.duration, args.events_only,
                   args.model, args.verbose)
