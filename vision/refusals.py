"""The kinds of a truck's model refusal (``vision.schema.ModelUpdate.reason``), from its first words.

How the edge's refusals begin (edge/model_update.py, ``ModelRefused``): the server names a kind in
the reader's language (``rollout.refusal.<kind>`` in server/templates/i18n). In ``vision``, beside
the wire contract, because both the fleet's rollout reasons and the trucks API read it. The truck
sends free text (any edge version, cut at 300 characters), so a start not listed here has no kind
and is shown as it is.
"""

from __future__ import annotations

REFUSAL_KINDS: dict[str, tuple[str, ...]] = {
    "download": ("download impossible:", "download refused:", "download failed:"),
    "hash": ("wrong hash:",),
    "unusable": ("not a usable model:",),
    "metadata": ("the file's metadata name",),
    "rules": ("classes without rules:",),
    "selfcheck": ("self-check impossible:", "self-check failed:"),
    "check": ("check failed:",),
}


def refusal_kind(detail: str | None) -> str | None:
    """The kind of a truck's refusal (``ModelUpdate.reason``) from its first words, None when the edge
    said something else."""
    for kind, starts in REFUSAL_KINDS.items():
        if detail and detail.startswith(starts):
            return kind
    return None
