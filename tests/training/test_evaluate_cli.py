"""``trivue evaluate`` refuses bad files and output paths in one line, exit 2, before evaluating."""

from __future__ import annotations

from pathlib import Path

import pytest

from trivue.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rules", "{tmp}/unknown.yaml"], "{tmp}/unknown.yaml: rules file not found"),
        (["--rules", "{tmp}/bad.yaml"], "{tmp}/bad.yaml: not valid YAML"),
        (["--lifts", "--rules", "{tmp}/bad.yaml"], "{tmp}/bad.yaml: not valid YAML"),
        (["--data", "{tmp}/bad.yaml"], "{tmp}/bad.yaml: not valid YAML"),
        (["--data", "{tmp}/run"], "{tmp}/run/data.yaml: not valid YAML"),  # a folder's data.yaml
        (["--data", "{tmp}/list.yaml"], "{tmp}/list.yaml: expected a mapping at the top level"),
        (["--plot", "{tmp}/a-file/pr.png"], "--plot {tmp}/a-file/pr.png: its folder {tmp}/a-file cannot be made: "
                                            "File exists"),
        (["--lifts", "--plot", "{tmp}/a-file/x.jpg"], "--plot {tmp}/a-file/x.jpg: its folder {tmp}/a-file"),
        (["--plot", "{tmp}/run"], "--plot {tmp}/run: is a folder, expected a PNG file name"),
        (["--sheets", "{tmp}/a-file"], "--sheets {tmp}/a-file: cannot be a folder: File exists"),
        (["--gates", "{tmp}/gates.yaml"], "--gates and --field-map go with --compare OLD NEW --data FIELD_DIR"),
        (["--lifts", "--field-map", "{tmp}/map.yaml"], "--gates and --field-map go with --compare"),
        # the split is named with the splits there are (it read "needs 'names' and a 'tset' entry")
        (["--data", "{tmp}/split.yaml", "--split", "tset"],
         "no split 'tset' in {tmp}/split.yaml (its splits: train, val)"),
        (["--data", "{tmp}/nameless.yaml"], "{tmp}/nameless.yaml: needs 'names', the class list"),
    ],
)
def test_evaluate_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                                message: str) -> None:
    (tmp_path / "bad.yaml").write_text("names: [bottle\n", encoding="utf-8")
    (tmp_path / "list.yaml").write_text("- bottle\n", encoding="utf-8")
    (tmp_path / "a-file").write_text("in the way", encoding="utf-8")
    (tmp_path / "split.yaml").write_text("names: [bottle]\ntrain: images/train\nval: images/val\n", encoding="utf-8")
    (tmp_path / "nameless.yaml").write_text("val: images/val\n", encoding="utf-8")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "data.yaml").write_text("names: {0: bottle\n", encoding="utf-8")
    code = main(["evaluate", *(a.format(tmp=tmp_path) for a in args)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("trivue evaluate: error: ") and message.format(tmp=tmp_path) in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
