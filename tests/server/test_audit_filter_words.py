"""An export's or a listing's filter reads as words in the audit journal, not as a dataclass's repr."""

from __future__ import annotations

from datetime import UTC, date, datetime

from server.audit import filter_words
from server.web.drilldown import LiftFilter
from server.web.reports import StreetFilter


def test_only_the_fields_set_are_written_with_iso_dates() -> None:
    lifts = LiftFilter(street_id=343, day_since=date(2026, 11, 6), day_until=date(2026, 12, 6),
                       since=datetime(2026, 11, 6, 23, tzinfo=UTC))
    assert filter_words(lifts) == ("street_id=343, since=2026-11-06T23:00:00+00:00, "
                                   "day_since=2026-11-06, day_until=2026-12-06")
    assert filter_words(StreetFilter(since=date(2026, 9, 1), stream="glass")) == \
        "since=2026-09-01, stream=glass, min_lifts=1"
    assert filter_words(LiftFilter()) == "no filter"
