"""Datasets -> COCO init -> Ultralytics training -> evaluation -> ONNX export.

``training.checkpoints`` and ``training.partial`` import Ultralytics at module level, and
Ultralytics probes the network at import: the offline environment (``base.offline``) is set here,
before any of them loads.
"""

from base.offline import keep_libraries_offline

keep_libraries_offline()
