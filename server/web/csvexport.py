"""CSV exports that a spreadsheet opens as data, never as formulas (OWASP "CSV injection").

Street names come from OpenStreetMap (anyone can edit them), notes and user names from people:
a cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is evaluated by
Excel/LibreOffice as a formula (``=HYPERLINK(...)`` leaks data, DDE runs commands). Such text
cells get a leading ``'``, which spreadsheets show as text and do not evaluate.

Numbers are decided by their type, not their text: an ``int``/``float``/``Decimal`` computed by
the server (a negative rate difference, a count) is written unchanged and stays a number in the
spreadsheet; ``-0.25`` cannot carry a formula. A *string* is untrusted whatever it looks like, so
the text ``"-2"`` becomes ``'-2`` (shown as text: no data is lost, and no pattern of "harmless
number-like text" has to be trusted). ``server/static/ranking.js`` ``csvCell`` applies the same rule.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV cell that no spreadsheet evaluates; numbers and ``None`` unchanged."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return value  # a number typed as a number: data, never a formula
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]


def csv_pieces(columns: Sequence[str], rows: Iterable[Sequence[Any]], rows_per_piece: int = 1000) -> Iterator[str]:
    """A CSV document in pieces of ``rows_per_piece`` rows (the header first, alone), each row its
    values in ``columns`` order, for a streamed response: one piece at a time in memory instead of
    the whole document."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(safe_row(columns))
    yield out.getvalue()
    pending = 0
    for values in rows:
        if pending == 0:
            out.seek(0)
            out.truncate()
        writer.writerow(safe_row(values))
        pending += 1
        if pending == rows_per_piece:
            yield out.getvalue()
            pending = 0
    if pending:
        yield out.getvalue()


def rows_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A CSV document: a header of ``columns``, then each row's values for them, every cell made safe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(safe_row(columns))
    for row in rows:
        writer.writerow(safe_row(row.get(c) for c in columns))
    return out.getvalue()
