"""``trivue bins import --replace`` with a file that keeps no bin: the registry is left whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from trivue.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "geodata"


@pytest.fixture
def url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Rennes centre with its BAN addresses and two registered bins."""
    url = f"sqlite:///{tmp_path / 'trivue.db'}"
    assert (
        main(
            ["streets", "import", str(FIXTURES / "rennes-centre.geojson"), "--commune", "Rennes", "--database-url", url]
        )
        == 0
    )
    assert main(["addresses", "import", str(FIXTURES / "ban-rennes-centre.csv"), "--database-url", url]) == 0
    inventory = tmp_path / "parc.csv"
    inventory.write_text("tag;address\nE1;35238_1010_00001\nE2;35238_1010_00002\n", encoding="utf-8")
    assert main(["bins", "import", str(inventory), "--database-url", url]) == 0
    capsys.readouterr()
    return url


@pytest.mark.parametrize("text", ["tag;address\n", "tag;address\nE9;nowhere\n"], ids=["header-only", "all-refused"])
def test_replace_with_a_file_that_keeps_no_bin_removes_nothing(
    tmp_path: Path, url: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: exit 0 (or 1) with "2 removed": a failed export run with --replace emptied the registry.
    assert _replace(tmp_path, url, text) == 2
    err = capsys.readouterr().err
    assert "--replace" in err and "2 registered bins" in err and "nothing changed" in err
    assert _stats(url, capsys).startswith("2 bins registered")


def test_replace_with_a_real_inventory_still_removes_the_others(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _replace(tmp_path, url, "tag;address\nE1;35238_1010_00001\n") == 0
    assert "1 unchanged, 1 removed" in capsys.readouterr().out


def _register(tmp_path: Path, url: str, count: int) -> None:
    """``count`` registered bins E1..En, one per address of the fixture."""
    inventory = tmp_path / "parc-complet.csv"
    inventory.write_text(
        "tag;address\n" + "".join(f"E{n};35238_1010_{n:05d}\n" for n in range(1, count + 1)), encoding="utf-8"
    )
    assert main(["bins", "import", str(inventory), "--database-url", url]) == 0


def _replace(tmp_path: Path, url: str, text: str, *options: str) -> int:
    """``bins import --replace`` of a file holding ``text``: its exit code."""
    export = tmp_path / "export.csv"
    export.write_text(text, encoding="utf-8")
    return main(["bins", "import", str(export), "--replace", *options, "--database-url", url])


def _stats(url: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["bins", "stats", "--database-url", url]) == 0
    return capsys.readouterr().out


def test_replace_with_a_truncated_export_removes_nothing(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(tmp_path, url, 5)
    capsys.readouterr()
    # Before: exit 0 with "3 removed": a cut-off export kept 2 of 5 bins and deleted the others.
    assert _replace(tmp_path, url, "tag;address\nE1;35238_1010_00001\nE2;35238_1010_00002\n") == 2
    err = capsys.readouterr().err
    assert "remove 3 of the 5 registered bins" in err and "--allow-removals" in err and "nothing changed" in err
    assert _stats(url, capsys).startswith("5 bins registered")


def test_replace_removes_most_bins_with_allow_removals(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(tmp_path, url, 5)
    capsys.readouterr()
    assert _replace(tmp_path, url, "tag;address\nE1;35238_1010_00001\n", "--allow-removals") == 0
    assert "1 unchanged, 4 removed" in capsys.readouterr().out
    assert _stats(url, capsys).startswith("1 bins registered")


def test_replace_with_an_updated_inventory_removes_a_few_without_the_option(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(tmp_path, url, 5)
    update = "tag;address\n" + "".join(f"E{n};35238_1010_{n:05d}\n" for n in (1, 2, 3, 4)) + "E6;35238_1010_00006\n"
    capsys.readouterr()
    assert _replace(tmp_path, url, update) == 0
    assert "1 bins added, 0 moved to another address, 4 unchanged, 1 removed" in capsys.readouterr().out
