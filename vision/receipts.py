"""End-to-end receipts (``<prefix>/<truck_id>/receipt``): which truck messages the server has dealt with.

A PUBACK only says the broker holds a message in memory; a broker crash loses it. The server
therefore tells each truck which messages it has durably dealt with (stored, duplicate or dead
letter), and the truck deletes an outbox row only then. A message is named by a digest of its
topic and payload rather than by a field of the payload, so that a message the server could not
parse (a dead letter) can be receipted too; the topic is part of it because two photos of a stuck
camera can be byte-identical while their topics (event ids) differ.

Part of the wire contract, re-exported by ``vision.schema``; the standard library only.
"""

from __future__ import annotations

import hashlib
import json

RECEIPT_VERSION = 1
RECEIPT_DIGEST_BYTES = 8  # 16 hex digits: a collision among one truck's unreceipted rows is ~2^-64 per pair


def message_digest(topic: str, payload: bytes) -> str:
    """The name of one outbox message in a receipt: the first bytes of SHA-256(topic, NUL, payload), hex."""
    digest = hashlib.sha256(topic.encode("utf-8", "surrogateescape"))
    digest.update(b"\x00")
    digest.update(payload)
    return digest.hexdigest()[: 2 * RECEIPT_DIGEST_BYTES]


def receipt_payload(digests: list[str]) -> bytes:
    """A receipt: ``{"v": 1, "digests": [...]}``, compact JSON (a batch of 500 lifts is ~9.5 kB)."""
    return json.dumps({"v": RECEIPT_VERSION, "digests": digests}, separators=(",", ":")).encode()


def parse_receipt(payload: bytes) -> list[str]:
    """The digests of a receipt; ValueError for anything else (a truck ignores such a message)."""
    try:
        document = json.loads(payload)
    except RecursionError:  # "[[[[...": json's parser recurses; in paho's thread it killed the network loop
        raise ValueError("nested too deeply to be a receipt") from None
    if not isinstance(document, dict) or document.get("v") != RECEIPT_VERSION:
        raise ValueError("not a version 1 receipt")
    digests = document.get("digests")
    if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
        raise ValueError("receipt without a list of digests")
    return digests
