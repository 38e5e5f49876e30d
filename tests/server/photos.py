"""Field photos as trucks send them (wire 1.1): lifts with a kept photo and the model's boxes, stored
through the ingest's write path."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np

from server.config import ServerSettings
from server.ingest.evidence import EvidenceStore
from server.ingest.inbox import Inbox, MqttMessage
from server.ingest.metrics import Metrics
from tests.server.events import lift_event
from vision.schema import LiftEvent

BAG = {"class": "bag", "confidence": 0.91, "x1": 0.1, "y1": 0.2, "x2": 0.3, "y2": 0.5}
BOTTLE = {"class": "bottle", "confidence": 0.42, "x1": 0.5, "y1": 0.5, "x2": 0.7, "y2": 0.9}


def jpeg(seed: int, width: int = 320, height: int = 240) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, buffer = cv2.imencode(".jpg", cv2.GaussianBlur(image, (0, 0), 3), [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return buffer.tobytes()


def photo_event(seed: int, truck: str = "benne-01", reason: str = "contaminated",
                boxes: list[dict[str, Any]] | None = None, at: datetime | None = None,
                wire: str = "1.1") -> tuple[LiftEvent, bytes]:
    data = jpeg(seed)
    boxes = [BAG, BOTTLE] if boxes is None else boxes
    counts = {b["class"]: 1 for b in boxes}
    evidence: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest(), "width": 320, "height": 240}
    if wire == "1.1":
        evidence |= {"reason": reason, "detections": boxes}
    event = lift_event(truck, counts=counts, at=at or datetime.now(UTC) - timedelta(hours=2), sequence=seed,
                       evidence=evidence, schema_version=wire)
    return event, data


def seed_photos(settings: ServerSettings, sessions: Any, photos: list[tuple[LiftEvent, bytes]]) -> None:
    inbox = Inbox(settings, EvidenceStore(settings.evidence_path, settings.max_evidence_bytes), Metrics(),
                  lambda _s: None)
    now = datetime.now(UTC)
    prefix = settings.topic_prefix
    messages = []
    for event, data in photos:
        messages.append(MqttMessage(f"{prefix}/{event.truck_id}/lift", event.to_json().encode(), now))
        messages.append(MqttMessage(f"{prefix}/{event.truck_id}/evidence/{event.event_id}", data, now))
    with sessions() as session, session.begin():
        inbox.write(session, messages)
