"""What a truck config change does to the stored config: what it keeps, what it changed (the audit
entry), and whether it carries settings from a config the truck refused.

A truck refuses a whole config (a stream its sorting rules lack, a value its version cannot read)
and says so in its heartbeat (``config_refused``: the config_version, then why) until it applies
another one. The server keeps every setting changed before in each config it publishes (the
retained message is all a rebooted truck receives), so a refused value came back in every later
config, each refused in turn, without a word: the answer now names the settings carried over while
the truck's last word is a refusal, and ``reset`` removes a setting from the stored config.
"""

from __future__ import annotations

import json
from typing import Any

from server.ingest.models import Truck

SETTINGS = ("stream", "conf", "min_track_frames")  # what an admin sets (and may reset); model: rollouts


def kept_settings(stored: dict[str, Any] | None, reset: list[str]) -> dict[str, Any]:
    """The stored config's settings a new config keeps: all but ``reset`` (and its version and model)."""
    return {k: v for k, v in (stored or {}).items() if k not in ("config_version", "model", *reset)}


def refusal(truck: Truck) -> dict[str, str] | None:
    """The truck's last word on its configs, when it is a refusal: ``{config_version, reason}``."""
    said = (truck.stats or {}).get("config_refused")
    if not said:
        return None
    version, _, reason = str(said).partition(": ")
    return {"config_version": version, "reason": reason or str(said)}


def _shown(key: str, value: Any) -> str:
    if key == "model" and isinstance(value, dict):
        value = f"{value.get('name')} {value.get('version')} ({str(value.get('sha256'))[:12]})"
    return json.dumps(value, ensure_ascii=False)


def changes(before: dict[str, Any] | None, after: dict[str, Any]) -> str:
    """The audit entry of a config change: ``key: old -> new`` for each setting changed, JSON values
    (null: not set; a setting reset reads ``old -> null``). No config_version: a config with a model
    gets its version when it is published, maybe later (the audit entry's time tells them apart)."""
    before = before or {}
    keys = [k for k in (*SETTINGS, "model") if before.get(k) != after.get(k)]
    return ", ".join(f"{k}: {_shown(k, before.get(k))} -> {_shown(k, after.get(k))}" for k in keys) or "no change"
