"""The start-up line that says the street index was built: counts an operator can read."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from server.app import LocatorCache
from server.command_line import migrated_engine


def test_the_street_index_line_names_what_it_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # It printed "street index (re)built: (5761, 5761, 65449, 65449)": the change signature, two
    # counts and two highest ids, unlabelled, in every deployment's first minute of log.
    engine = migrated_engine(f"sqlite:///{tmp_path / 'trivue.db'}")
    cache = LocatorCache(lambda _session: None)
    with caplog.at_level(logging.INFO, logger="server.app"), Session(engine) as session:
        cache(session)
    engine.dispose()
    assert [record.getMessage() for record in caplog.records] == [
        "street index (re)built: 0 street segments, 0 addresses"
    ]
