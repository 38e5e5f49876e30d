"""Is the campaign effect report right? Its estimator against simulations with a known truth.

For ``--trials`` seeds, the simulator (``trivue.reminder_effect.simulate_trial``) plays a campaign
on the Rennes extract twice: without any effect, and with reached households' contamination
dropping by ``--drop`` two days after the message. The report's own matching and estimator
(difference in differences, bootstrap over matched streets) then say what they see. Printed:

- false alarms without effect (the interval excludes zero), expected about 5 %;
- coverage with the effect (the interval contains the simulated truth), expected about 95 %;
- power (the report concludes to a decrease) and the mean estimate against the mean truth.

    .venv/bin/python bench/reminders_validity.py [--trials 200] [--drop 0.3] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import statistics

from pydantic import ValidationError
from rich.console import Console
from rich.progress import track
from rich.table import Table

from server.reminders.config import EffectRules
from server.web.reports import wilson
from trivue.sim.reminder_effect import estimate_trial, simulate_trial


def share(hits: int, n: int) -> str:
    low, high = wilson(hits, n)
    return f"{hits}/{n} = {hits / n:.1%} (IC 95 % {low:.1%}–{high:.1%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--drop", type=float, default=0.3, help="relative drop for reached households")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    # Refused here, before minutes of simulation, with the report's own bounds (a bad value used
    # to surface as a pydantic traceback after the first simulated campaign).
    if args.trials < 1:
        parser.error("--trials: at least 1")
    try:
        EffectRules(bootstrap=args.bootstrap)
    except ValidationError as error:
        parser.error(f"--bootstrap: {error.errors()[0]['msg']} (the campaign effect report's bound)")
    alarms, covered, found, unbalanced = 0, 0, 0, 0
    estimates, truths = [], []
    for seed in track(range(args.trials), description="simulated campaigns", transient=True):
        null = estimate_trial(simulate_trial(seed, 0.0), args.bootstrap, seed)
        unbalanced += null["status"] == "unbalanced"
        alarms += null["status"] in ("decrease", "increase")
        trial = simulate_trial(seed, args.drop)
        real = estimate_trial(trial, args.bootstrap, seed)
        low, high = real["estimate"]["ci"]
        covered += low <= trial.truth_did <= high
        found += real["status"] == "decrease"
        estimates.append(real["estimate"]["did"])
        truths.append(trial.truth_did)
    table = Table(title=f"{args.trials} simulated campaigns, drop {args.drop:.0%} for reached households")
    table.add_column("check")
    table.add_column("result")
    table.add_column("expected")
    table.add_row("false alarms (no effect simulated)", share(alarms, args.trials), "≈ 5 %")
    table.add_row("coverage of the true effect", share(covered, args.trials), "≈ 95 %")
    table.add_row("decrease found (power)", share(found, args.trials), "high")
    table.add_row("mean estimate / mean truth (points)",
                  f"{statistics.fmean(estimates) * 100:+.2f} / {statistics.fmean(truths) * 100:+.2f}", "equal")
    table.add_row("refused as unbalanced", share(unbalanced, args.trials), "rare")
    Console().print(table)


if __name__ == "__main__":
    main()
