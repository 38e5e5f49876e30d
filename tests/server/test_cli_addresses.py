"""``trivue addresses import`` before the commune's streets: the summary says what to import first."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.streets_db import FIXTURES
from trivue.cli import main

BAN = FIXTURES / "ban-rennes-centre.csv"
STREETS = FIXTURES / "rennes-centre.geojson"
ADVICE = "import the streets first"


@pytest.fixture(autouse=True)
def _scratch_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", f"sqlite:///{tmp_path / 'trivue.db'}")


def test_addresses_with_no_street_to_link_to_say_to_import_the_streets(capsys: pytest.CaptureFixture[str]) -> None:
    """It ended with "unlinked 53" and exit 0, no word of why: the commune had no street yet."""
    assert main(["addresses", "import", str(BAN)]) == 0  # the addresses are kept (docs/streets.md)
    out = capsys.readouterr().out
    assert "unlinked 53" in out, out
    advice = out.strip().splitlines()[-1]
    assert advice.startswith("53 of 53 addresses found no street: ") and ADVICE in advice, out
    assert "trivue streets import FILE --commune " in advice, out


def test_a_few_unlinked_addresses_get_no_advice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["streets", "import", str(STREETS), "--commune", "Rennes"]) == 0
    assert main(["addresses", "import", str(BAN)]) == 0
    out = capsys.readouterr().out
    assert "unlinked 2" in out and ADVICE not in out, out
