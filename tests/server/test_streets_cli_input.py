"""``trivue streets`` / ``trivue addresses`` refuse impossible input in one line (exit 2) and keep
the database as it was: off-globe street coordinates, impossible GPS fixes, a non-French postcode.
Features without geometry are skipped and counted, never silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.streets.models import Address, Street
from tests.server.streets_db import FIXTURES
from trivue.cli import main

STREETS = FIXTURES / "rennes-centre.geojson"


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'trivue.db'}"
    monkeypatch.setenv("TRIVUE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRIVUE_DATABASE_URL", url)
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def feature(coords: object, name: str = "Rue A", **extra: object) -> dict[str, object]:
    geometry = None if coords is None else {"type": "LineString", "coordinates": coords}
    return {"type": "Feature", "properties": {"name": name, "highway": "residential"}, "geometry": geometry,
            **extra}


def collection(tmp_path: Path, *features: dict[str, object]) -> Path:
    path = tmp_path / "streets.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": list(features)}))
    return path


def streets_in(url: str) -> int:
    from server.db import make_engine

    with Session(make_engine(url)) as session:
        return session.scalar(select(func.count()).select_from(Street)) or 0


@pytest.mark.parametrize(("features", "message"), [
    ([feature([[500, 95], [501, 96]])], "feature 0 has position lon 500, lat 95 outside WGS84 bounds"),
    ([feature([[-1.68, 48.11], [-1.681, 48.111]]), feature([[-1.68, 48.11], [-1.68, -91]], "Rue B", id="way/7")],
     "feature 1 (way/7) has position lon -1.68, lat -91 outside WGS84 bounds"),
    ([feature([[-1.68, 48.11], [-1.681, 48.111]]), "not a feature"], "feature 1 is not a GeoJSON Feature"),
])
def test_off_globe_coordinates_refuse_the_file(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str],
                                               features: list[dict[str, object]], message: str) -> None:
    path = collection(tmp_path, *features)
    code, out, err = run(capsys, "streets", "import", str(path), "--commune", "X")
    assert code == 2 and message in err and "streets.geojson" in err, err
    # (the first open of the database also logs its migration on stderr: not this command's doing)
    assert [line for line in err.splitlines() if "INFO" not in line] == [err.splitlines()[-1]]
    assert "Traceback" not in err and "added" not in out
    assert streets_in(url) == 0


def test_features_without_geometry_are_counted(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = collection(tmp_path, feature([[-1.68, 48.11], [-1.681, 48.111]]), feature(None, "Rue B"),
                      feature(None, "Rue C"))
    code, out, err = run(capsys, "streets", "import", str(path), "--commune", "X")
    assert code == 0 and "1 streets added" in out
    assert "warning: 2 features without geometry skipped" in err
    path = collection(tmp_path, feature(None))
    code, _, err = run(capsys, "streets", "import", str(path), "--commune", "X")
    assert code == 2 and "no named street way found (1 feature without geometry)" in err


@pytest.mark.parametrize(("extra", "message"), [
    (("95", "500"), "position 95, 500: latitude must be within -90..90"),
    (("48.11", "-181"), "position 48.11, -181: latitude"),
    (("nan", "-1.68"), "position nan, -1.68"),
    (("48.11", "-1.68", "--max-distance", "-5"), "--max-distance -5: a positive number"),
    (("48.11", "-1.68", "--max-distance", "0"), "--max-distance 0: a positive number"),
    (("48.11", "-1.68", "--accuracy", "-5"), "--accuracy -5: zero or a positive"),
    (("48.11", "-1.68", "--heading", "720"), "--heading 720: degrees from 0 to 360"),
    (("48.11", "-1.68", "--heading", "-1"), "--heading -1: degrees from 0 to 360"),
])
def test_locate_refuses_impossible_fixes(url: str, capsys: pytest.CaptureFixture[str],
                                         extra: tuple[str, ...], message: str) -> None:
    code, out, err = run(capsys, "streets", "locate", *extra)
    assert code == 2 and message in err and out == "", err
    assert len(err.strip().splitlines()) == 1


def test_locate_accepts_the_edges(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "streets", "import", str(STREETS), "--commune", "Rennes")[0] == 0
    code, out, _ = run(capsys, "streets", "locate", "-90", "180", "--heading", "360", "--accuracy", "0")
    assert code == 1 and "no street within 30 m" in out


@pytest.mark.parametrize("postcode", ["abc", "3500", "350000", "35 000"])
def test_synthesize_refuses_a_postcode_that_is_not_five_digits(url: str, capsys: pytest.CaptureFixture[str],
                                                               postcode: str) -> None:
    assert run(capsys, "streets", "import", str(STREETS), "--commune", "Rennes")[0] == 0
    code, _, err = run(capsys, "addresses", "synthesize", "--commune", "Rennes", "--postcode", postcode)
    assert code == 2 and f"--postcode {postcode!r}: a French postcode is 5 digits" in err
    from server.db import make_engine

    with Session(make_engine(url)) as session:
        assert session.scalar(select(func.count()).select_from(Address)) == 0
    code, out, _ = run(capsys, "addresses", "synthesize", "--commune", "Rennes", "--postcode", "35000")
    assert code == 0 and "synthetic addresses" in out


@pytest.mark.parametrize("command", [["streets", "import"], ["addresses", "import"], ["bins", "import"]])
def test_a_folder_instead_of_the_file_is_named_as_such(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str],
                                                       command: list[str]) -> None:
    """A tab-completed folder was reported as "no such file" by the street and address imports."""
    (tmp_path / "exports").mkdir()
    code, _, err = run(capsys, *command, str(tmp_path / "exports"))
    assert code == 2 and err.strip().endswith(f"{tmp_path / 'exports'}: not a file"), err
    code, _, err = run(capsys, *command, str(tmp_path / "absent.csv"))
    assert code == 2 and err.strip().endswith(f"{tmp_path / 'absent.csv'}: no such file"), err
