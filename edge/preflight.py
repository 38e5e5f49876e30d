"""Start-up checks of everything the settings alone can show wrong, before the model loads.

The model's load and its INT8 self-check take seconds on a truck computer; a misspelt ``gps.source``
(or rules file, evidence folder, CA bundle) used to be reported only after them, behind their log
lines, where the installer had stopped reading. ``preflight`` opens no device and no network: what
depends on a device or a peer (a serial line unplugged, a broker away) is reopened at run time.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from base.paths import COCO_WEIGHTS
from edge.camera import SourceError, check_source
from edge.config import ConfigError, EdgeSettings
from edge.evidence import make_evidence_dir
from edge.gps import check_gps_source
from edge.model_choice import configured_model
from vision.rules import COCO_RULES, DEFAULT_RULES, RulesError, SortingRules


def check_ca_files(settings: EdgeSettings) -> None:
    """A CA bundle that does not load stops start-up naming its setting: paho raised a traceback
    (``uplink.ca_file``), and every model download would have failed (``models.ca_file``)."""
    for field, path in (("uplink.ca_file", settings.uplink.ca_file), ("models.ca_file", settings.models.ca_file)):
        if path is not None:
            try:
                ssl.create_default_context(cafile=str(path))
            except (OSError, ssl.SSLError) as error:
                reason = getattr(error, "strerror", None) or error
                raise ConfigError(f"{field}: {str(path)!r} is not a CA bundle that can be read ({reason})") from None


def preflight(settings: EdgeSettings) -> Path:
    """Raise the error (``ConfigError``, ``SourceError``, ``GpsError``, ``RulesError``) of the first
    setting that cannot work; returns the model file configured (not loaded)."""
    try:  # a wrong source fails fast, naming the setting as config errors do
        check_source(settings.source)
    except SourceError as error:
        raise SourceError(f"source: {error}") from None
    check_gps_source(settings.gps.source)
    check_ca_files(settings)
    make_evidence_dir(settings.evidence)
    model = configured_model(settings)
    if not model.is_file():  # the wording of the detector's own error, seconds earlier
        raise ConfigError(f"model: {model}: model file not found")
    # the rules file and its stream; the model's classes are checked against them once it is loaded
    rules = SortingRules.load(settings.rules or (COCO_RULES if model.resolve() == COCO_WEIGHTS.resolve()
                                                 else DEFAULT_RULES))
    if settings.stream not in rules.streams:
        raise RulesError(f"{rules.source}: no rules for stream '{settings.stream.value}'")
    return model
