"""The report as ``trivue reminders report`` prints it, right after a send: a period without any lift
has no interval (Wilson's 0–100 % over no lift says nothing), and one street is one unit."""

from __future__ import annotations

from typing import Any

from server.reminders.effect import effect_text


def _report() -> dict[str, Any]:
    def period(rate: float | None, ci: list[float], lifts: int) -> dict[str, Any]:
        return {"rate": rate, "ci": ci, "lifts": lifts}

    return {
        "campaign": 1,
        "status": "too_few",
        "text": "Trop peu de levées pour conclure",
        "groups": {
            "targeted": {
                "units": 1,
                "before": period(0.645, [0.589, 0.698], 293),
                "after": period(None, [0.0, 1.0], 0),
            },
            "control": {"units": 2, "before": period(0.584, [0.538, 0.628], 461), "after": period(None, [0.0, 1.0], 0)},
            "households": {"units": 0, "before": period(None, [0.0, 1.0], 0), "after": period(None, [0.0, 1.0], 0)},
        },
        "balance": {"rate": 0.11, "log_lifts": 1.22, "max_smd": 0.25},
        "estimate": {"did": None, "ci": None, "conclusive": False, "label": "différence de différences", "draws": 2000},
    }


def test_no_interval_over_no_lift_and_one_unit_is_singular() -> None:
    english, french = effect_text(_report(), "en"), effect_text(_report(), "fr")
    assert "(1 unit)" in english and "(2 units)" in english
    assert "(1 unité)" in french and "(2 unités)" in french
    assert "after – over 0 lifts" in english and "100.0%" not in english
    assert "après – sur 0 levée" in french and "0 levées" not in french and "100,0 %" not in french  # 0: singular
    assert "before 64.5% [58.9%–69.8%] over 293 lifts" in english  # a period with lifts keeps its interval
