"""Where the repository, its models, the shared data folder and the data directory are, in one place;
and the output folders commands write to, made before any work (`make_folder`)."""

from __future__ import annotations

import os
from pathlib import Path

from base.errors import CliError

REPO_ROOT = Path(__file__).resolve().parent.parent
# The shipped models: models/ in a checkout. A truck installed from the wheel has no checkout, so
# the wheel carries them in vision/models (in the checkout a link to models/, followed when the
# wheel is built: pyproject.toml package-data); there it is a real folder, and it is the one used.
PACKAGED_MODELS_DIR = REPO_ROOT / "vision" / "models"
MODELS_DIR = (PACKAGED_MODELS_DIR if PACKAGED_MODELS_DIR.is_dir() and not PACKAGED_MODELS_DIR.is_symlink()
              else REPO_ROOT / "models")
# ../shared beside the checkout holds the real datasets, weights and geodata (read-only);
# TRIVUE_SHARED points elsewhere. A public clone has none: callers say so and fall back.
SHARED_DIR = Path(os.environ.get("TRIVUE_SHARED", REPO_ROOT.parent / "shared"))
COCO_WEIGHTS = SHARED_DIR / "weights" / "yolov8n-coco-int8.onnx"
# A small Rennes street extract committed with the code: demos and tests run without ../shared.
SAMPLE_STREETS = REPO_ROOT / "trivue" / "sample" / "rennes-centre.geojson"
DATA_DIR_ENV = "TRIVUE_DATA_DIR"
DEFAULT_DATA_DIR = Path("trivue-data")  # git-ignored, so a run from the checkout leaves the tree clean


def data_dir() -> Path:
    """``$TRIVUE_DATA_DIR``, else ``trivue-data``: where databases, photos and outputs are written.

    Read at call time, not import time, so that a test or a launcher setting the variable is obeyed.
    """
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def make_folder(option: str, path: Path, given: Path | None = None) -> None:
    """Create the output folder ``path`` (of the file ``given``, if the option names a file) before
    any work, so that a path that cannot be a folder (a file in the way, no permission) stops the
    command naming the option, not a traceback after the work."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        where = f"{given}: its folder {path} cannot be made" if given is not None else f"{path}: cannot be a folder"
        raise CliError(f"{option} {where}: {error.strerror or error}") from None


# The photo formats OpenCV (the truck, evaluation) and Ultralytics (training) both read.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})


def images_in(folder: Path, recursive: bool = False) -> list[Path]:
    """The photos in ``folder`` (and below it when ``recursive``), sorted: one definition for every
    command that takes a folder of photos, so a format one accepts is not skipped by another."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
