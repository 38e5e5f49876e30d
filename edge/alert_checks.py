"""Whether the crew alert can sound at all, said at WARNING when the truck starts and when it swaps models.

It was silent in two ways nobody saw. The rules' alert classes (battery, gas cylinder) may be classes
the running model cannot detect: the shipped ``trivue-waste`` has neither, the COCO fallback model
none of the rules' alert classes, and start-up listed them only among the info lines. And with no
output set (no serial line, no cab broker) an alert went to this log alone. The heartbeat
(``TruckStats``) has no field for either, so the log (``trivue edge``'s output) says it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from edge.config import AlertSettings
from vision.rules import Disposition, SortingRules
from vision.schema import ModelInfo, Stream

log = logging.getLogger(__name__)


def undetectable_alert_classes(rules: SortingRules, names: Iterable[str], stream: Stream) -> list[str]:
    """The stream's alert-severity rule classes that no class of the model maps to, in file order."""
    seen = {rules.canonical(name) for name in names}
    return [
        name
        for name in rules.classes(stream)
        if rules.disposition(stream, name) == Disposition.alert and name not in seen
    ]


def warn_undetectable_alerts(rules: SortingRules, names: Iterable[str], stream: Stream, model: ModelInfo) -> list[str]:
    """Warns naming the alert classes ``model`` cannot detect; returns them."""
    missing = undetectable_alert_classes(rules, names, stream)
    if missing:
        log.warning(
            "crew alert: the rules for %s alert on %s, which model %s %s cannot detect: the crew will "
            "never be alerted of them (docs/edge.md, Crew alert)",
            stream.value,
            ", ".join(missing),
            model.name,
            model.version,
        )
    return missing


def warn_no_alert_output(alert: AlertSettings) -> bool:
    """Warns when neither output is set; returns whether it warned."""
    if alert.serial_port or alert.broker:
        return False
    log.warning(
        "crew alert: no output set, the crew will not be alerted (a battery or gas cylinder in the hopper "
        "goes to this log only): set alert.serial_port (cab buzzer or light) and/or alert.broker (cab "
        "tablet), or TRIVUE_EDGE_ALERT__SERIAL_PORT / TRIVUE_EDGE_ALERT__BROKER"
    )
    return True
