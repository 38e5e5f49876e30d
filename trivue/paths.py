"""Where the repository, its models and the shared data folder are, in one place."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
# ../shared beside the checkout holds the real datasets, weights and geodata (read-only);
# TRIVUE_SHARED points elsewhere. A public clone has none: callers say so and fall back.
SHARED_DIR = Path(os.environ.get("TRIVUE_SHARED", REPO_ROOT.parent / "shared"))
COCO_WEIGHTS = SHARED_DIR / "weights" / "yolov8n-coco-int8.onnx"
