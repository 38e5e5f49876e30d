"""The streams the server counts: those of its sorting rules (``sorting_rules``).

A lift of another stream comes from a truck set up with other rules (its ``rules:`` file, or its
``stream`` setting). Counted, it swelled the dashboard's « Tous » totals under no *Flux* entry, the
streets' rates judged by rules the server does not know. Ingest refuses it instead, as an
``unknown_stream`` dead letter kept whole (``server.ingest.letters.HELD_REASONS``), which
``trivue dead-letters replay --reason unknown_stream`` stores once the rules name the stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from server.config import ServerSettings


def collected_streams(settings: ServerSettings, streams: Iterable[str] | None = None) -> tuple[str, ...]:
    """``streams`` as given, else those of the settings' sorting rules (read from its file: a bad
    file raises ``ConfigError``), in the rules' order."""
    if streams is None:
        streams = _rules_streams(settings)
    return tuple(dict.fromkeys(str(stream) for stream in streams))


# The streams of each version of a rules file read (path, time, size): parsing the YAML takes 50 ms,
# and every inbox made without ``streams`` (commands, the tests' hundreds) parsed it again.
_READ: dict[tuple[Path, int, int], tuple[str, ...]] = {}


def _rules_streams(settings: ServerSettings) -> tuple[str, ...]:
    try:
        stat = settings.sorting_rules.stat()
    except OSError:  # not cached: load_sorting_rules says what is wrong with the setting
        return tuple(str(stream) for stream in settings.load_sorting_rules().streams)
    key = (settings.sorting_rules, stat.st_mtime_ns, stat.st_size)
    if key not in _READ:
        if len(_READ) >= 16:
            _READ.clear()
        _READ[key] = tuple(str(stream) for stream in settings.load_sorting_rules().streams)
    return _READ[key]


def unknown_stream(stream: str, collected: tuple[str, ...]) -> str | None:
    """Why a lift of ``stream`` cannot be counted (the dead letter's detail), None when it can."""
    if stream in collected:
        return None
    return f"lift of {not_collected(stream, collected)}: replay it once the rules name it"


def unknown_config_stream(stream: str, collected: tuple[str, ...]) -> str | None:
    """Why a truck must not be set to collect ``stream`` (``PUT /api/trucks/{id}/config``: a 422),
    None when it may: each of its lifts would be an ``unknown_stream`` dead letter."""
    if stream in collected:
        return None
    return (f"{not_collected(stream, collected)}: the truck's lifts would all be dead letters (unknown_stream); "
            "add it to the sorting rules first")


def not_collected(stream: str, collected: tuple[str, ...]) -> str:
    """« stream X, which the sorting rules do not collect (they collect ...) »: each refusal's subject."""
    return f"stream {stream!r}, which the sorting rules do not collect (they collect {', '.join(collected) or 'none'})"
