"""``trivue demo``'s typed options, checked once from the command line (as ``trivue.sim.options``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from trivue.sim.options import WorldOptions, check_at_least, check_model


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
        """Every option checked before the broker, the server or a truck starts."""
        world = WorldOptions.from_args(args)
        check_at_least(args, "speed", 0, " (as fast as possible)")
        check_at_least(args, "history_days", 0, " (no history)")
        check_at_least(args, "duration", 0, " (until Ctrl-C)")
        check_model(args.model)
        return cls(world, args.speed, args.history_days, args.duration, args.events_only,
                   args.model, args.verbose)
