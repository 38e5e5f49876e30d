"""The model and rules a truck starts with: ``model:``, else the one shipped in the package (INT8,
checked against its FP32 sibling on this CPU: ``vision.selfcheck``), and the sorting rules for it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from base.paths import COCO_WEIGHTS, MODELS_DIR
from edge.config import ConfigError, EdgeSettings
from vision.model import QUANTISED_MODEL_NAME, default_model_path
from vision.rules import COCO_RULES, DEFAULT_RULES, SortingRules
from vision.schema import ModelCheck
from vision.selfcheck import SelfCheckError, calibration_photos, check_int8, fp32_sibling

log = logging.getLogger(__name__)


def load_sorting_rules(settings: EdgeSettings, model_path: Path, names: tuple[str, ...]) -> SortingRules:
    """Rules from ``rules:``; by default those of the model (COCO rules for the COCO fallback)."""
    path = settings.rules or (COCO_RULES if model_path.resolve() == COCO_WEIGHTS.resolve() else DEFAULT_RULES)
    rules = SortingRules.load(path)
    missing = rules.check_model(names, settings.stream)  # raises RulesError naming the class
    if missing:
        log.info("rules for %s name classes this model cannot see: %s", settings.stream.value, ", ".join(missing))
    return rules


def configured_model(settings: EdgeSettings) -> Path:
    """``model:``, else the default: ``$TRIVUE_MODEL``, the models shipped in the package, the COCO
    model of a checkout's ../shared. None of them here (an installation without its models) stops
    start-up saying what to set, where it named a COCO file in a folder the truck never had."""
    if settings.model is not None or os.environ.get("TRIVUE_MODEL"):
        return Path(settings.model or default_model_path(quantised=True))
    path = default_model_path(quantised=True)
    if not path.is_file():
        raise ConfigError(f"model: none set, and this installation has no model ({MODELS_DIR / QUANTISED_MODEL_NAME} "
                          f"and {COCO_WEIGHTS} are missing): set model: in the settings file, --model or $TRIVUE_MODEL "
                          "to an ONNX model (docs/edge.md, Running it)")
    return path


def choose_model(settings: EdgeSettings) -> tuple[Path, ModelCheck | None]:
    """The model to run: the configured one, unless it is an INT8 model that disagrees with its FP32
    sibling on the calibration photos (``vision.selfcheck``); then the FP32 model, and a warning.

    The check costs about a second at start-up (docs/edge.md). When it cannot run (unreadable
    sibling, missing package photos) the configured model runs and the status says why.
    """
    configured = configured_model(settings)
    check = settings.selfcheck
    if not check.enabled or fp32_sibling(configured) is None:
        return configured, None
    try:
        photos = calibration_photos(check.photos)
    except SelfCheckError as error:
        if check.photos is not None:  # the operator's own folder: a configuration error
            raise ConfigError(f"selfcheck.photos: {error}") from None
        return configured, _skipped(configured, check.max_disagreement, str(error))
    try:
        verdict = check_int8(configured, check.max_disagreement, photos, threads=settings.detector_threads)
    except SelfCheckError as error:
        return configured, _skipped(configured, check.max_disagreement, str(error))
    assert verdict is not None  # a sibling exists (tested above)
    agreement = verdict.agreement
    status = ModelCheck(status="passed" if verdict.passed else "fallback", configured=configured.name,
                        running=verdict.chosen.name, disagreement=round(agreement.disagreement, 4),
                        threshold=check.max_disagreement, photos=len(agreement.photos))
    if verdict.passed:
        log.info("INT8 self-check passed: %s against %s, disagreement %.3f <= %.3f on %d photos (%.2f s)",
                 configured.name, verdict.reference.name, agreement.disagreement, check.max_disagreement,
                 len(agreement.photos), verdict.seconds)
    else:
        log.warning("INT8 self-check failed: %s disagrees with %s by %.3f > %.3f on %d photos; running the FP32 "
                    "model %s instead (slower, but it sees what the model was validated to see)",
                    configured.name, verdict.reference.name, agreement.disagreement, check.max_disagreement,
                    len(agreement.photos), verdict.reference)
    return verdict.chosen, status


def _skipped(configured: Path, threshold: float, reason: str) -> ModelCheck:
    log.warning("INT8 self-check not possible (%s); running %s unchecked", reason, configured.name)
    return ModelCheck(status="skipped", configured=configured.name, running=configured.name, threshold=threshold,
                      reason=reason[:300])
