"""A deployment's copy of the sorting rules, edited as collectivités do: the server must follow it.

The copy starts from the packaged French rules (``vision/rules_fr.yaml``) and changes what a
collectivité typically changes: compostable bags handed out for the biowaste (a class, and an error
category of its own, that the packaged rules and the dashboard's translations do not have), a
paper bank that takes paper only, and optionally streams it does not collect removed.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from vision.rules import DEFAULT_RULES

COMPOSTABLE = "compostable_bag"
COMPOSTABLE_LABEL = "Sac compostable"
COMPOSTABLE_CATEGORY = "sac_compostable"


def edited_rules(folder: Path, drop_streams: tuple[str, ...] = ()) -> Path:
    """Write the edited copy in ``folder`` (``regles-orleans.yaml``) and return its path."""
    data = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    data["name"] = "Consignes de tri — Orléans Métropole"
    data["classes"][COMPOSTABLE] = {"label": COMPOSTABLE_LABEL, "category": COMPOSTABLE_CATEGORY}
    streams = data["streams"]
    for name, stream in streams.items():
        # Accepted with the food waste; anywhere else it is a bag where it does not belong.
        (stream["accepted"] if name == "biowaste" else stream.setdefault("error", [])).append(COMPOSTABLE)
    streams["paper"]["accepted"].remove("carton")
    streams["paper"]["error"].append("carton")
    for name in drop_streams:
        del streams[name]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "regles-orleans.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
