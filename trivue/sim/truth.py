"""The ground truth of a simulation, written so that the server's aggregation can be checked.

``lifts.csv``: one row per lift as it truly happened (street, household, synthetic flag, true and
reported position, contaminated, the faults it went through). ``truth.json``: the run's settings,
fault counts and, per street, the planned contamination rate and the lifts and contaminated lifts
actually simulated, worst streets first.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trivue.sim.schedule import PlannedLift

COLUMNS = ("event_id", "truck_id", "sequence", "street_id", "street", "commune", "household_id", "address",
           "synthetic", "bin_id", "lat", "lon", "gps_lat", "gps_lon", "started_at", "clock_skew_s",
           "contaminated", "counts", "duplicated", "held_offline_s", "view_unusable")


@dataclass
class Truth:
    """Collects the lifts of a run and the faults injected, then writes them out."""

    settings: dict[str, Any]
    rates: dict[str, float]  # street key -> planned rate
    rows: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, lift: PlannedLift, event_id: str, counts: dict[str, int], skew_s: float,
            duplicated: bool, held_s: float, view_unusable: str | None = None) -> None:
        """One lift; ``view_unusable``: its camera saw nothing (the server judges it not, nor do we)."""
        h = lift.household
        self.rows.append({
            "event_id": event_id, "truck_id": lift.truck_id, "sequence": lift.sequence,
            "street_id": h.street.street_id, "street": h.street.name, "commune": h.street.commune,
            "household_id": h.id, "address": h.label, "synthetic": h.synthetic, "bin_id": lift.bin_id or "",
            "lat": round(lift.lat, 7), "lon": round(lift.lon, 7),
            "gps_lat": lift.gps["lat"] if lift.gps else "", "gps_lon": lift.gps["lon"] if lift.gps else "",
            "started_at": lift.started_at.isoformat(), "clock_skew_s": skew_s,
            "contaminated": lift.contaminated, "counts": json.dumps(counts, sort_keys=True),
            "duplicated": duplicated, "held_offline_s": round(held_s, 1), "view_unusable": view_unusable or ""})

    def streets(self) -> list[dict[str, Any]]:
        table: dict[tuple[Any, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for row in self.rows:
            if row["view_unusable"]:  # stored by the server in no street's figures: nor here
                continue
            totals = table[(row["street_id"], row["street"], row["commune"])]
            totals[0] += 1
            totals[1] += bool(row["contaminated"])
        result = [{"street_id": sid, "name": name, "commune": commune, "lifts": lifts, "contaminated": bad,
                   "rate": bad / lifts, "planned_rate": self.rates.get(str(sid) if sid is not None
                                                                       else f"{commune}/{name}")}
                  for (sid, name, commune), (lifts, bad) in table.items()]
        return sorted(result, key=lambda s: (-s["rate"], -s["lifts"], s["name"]))

    def summary(self) -> dict[str, Any]:
        return {"settings": self.settings, "lifts": len(self.rows),
                "contaminated": sum(bool(r["contaminated"]) for r in self.rows),
                "synthetic_households": sum(bool(r["synthetic"]) for r in self.rows),
                "with_gps": sum(r["gps_lat"] != "" for r in self.rows),
                "with_bin_id": sum(bool(r["bin_id"]) for r in self.rows),
                "view_unusable": sum(bool(r["view_unusable"]) for r in self.rows),
                "faults": dict(self.faults), "streets": self.streets()}

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "lifts.csv").open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, COLUMNS)
            writer.writeheader()
            writer.writerows(self.rows)
        path = folder / "truth.json"
        path.write_text(json.dumps(self.summary(), indent=1, ensure_ascii=False, default=str), encoding="utf-8")
        return path
