"""Environment that keeps third-party libraries off the network: Trivue works offline.

Each variable is read by its library once, when it is first imported (onnxruntime when its shared
library loads, Ultralytics at ``import ultralytics``), so ``vision`` and ``training`` apply them
in their package ``__init__``, before any of their modules imports the library. ``setdefault``: a
deployment that wants a library's network use can still set the variable itself.
"""

from __future__ import annotations

import os

OFFLINE_ENVIRONMENT = {
    # onnxruntime's Linux wheels carry Microsoft's 1DS telemetry: about 9 s after the library loads
    # a thread looks up mobile.events.data.microsoft.com and posts to it (every edge agent, the
    # demo's trucks, `trivue detect/judge/evaluate`, training's COCO init). Only this variable,
    # seen at load, stops it: onnxruntime.disable_telemetry_events() afterwards does not.
    "ORT_DISABLE_TELEMETRY": "1",
    # Ultralytics resolves one.one.one.one and dns.google at import to decide whether it is online
    # (hub sync, asset downloads); training.train.offline_environment sets the rest of its settings
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",  # never pip-install a missing requirement at run time
}


def keep_libraries_offline() -> None:
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
