"""The `hf-ada` command line and the demo report assembly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hf_ada import cli
from hf_ada.commands import demo as demo_command
from hf_ada.demo import runner as demo


def _hf_ada(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hf_ada.cli", *args], capture_output=True, text=True, timeout=300)


def test_top_level_help_lists_every_command():
    proc = _hf_ada("--help")
    assert proc.returncode == 0
    for command in ("demo", "run", "index", "adapt", "bench", "enable", "disable", "ui"):
        assert f"\n  {command} " in proc.stdout


def test_unknown_command_is_a_one_line_usage_error():
    proc = _hf_ada("frobnicate")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "unknown command 'frobnicate'" in proc.stderr and "adapt, bench" in proc.stderr


@pytest.mark.parametrize("command, expected", [(["index", "--help"], "build"), (["bench", "--help"], "adan-step"),
                                               (["demo", "--help"], "--quick"), (["adapt", "--help"], "usage")])
def test_subcommand_help(command, expected, capsys):
    try:
        code = cli.main(command)
    except SystemExit as exc:  # argparse-based subcommands exit after --help
        code = exc.code
    assert code in (0, None)
    assert expected in capsys.readouterr().out


def test_unknown_index_action_and_benchmark(capsys):
    assert cli.main(["index", "nope"]) == 2
    assert "unknown action 'nope'" in capsys.readouterr().err
    assert cli.main(["bench", "nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err


def test_demo_rejects_unknown_stage(capsys):
    assert cli.main(["demo", "--only", "adan,bogus", "--out", "unused"]) == 2
    err = capsys.readouterr().err
    assert "bogus" in err and err.strip().count("\n") == 0


def test_report_assembles_stage_fragments(tmp_path, monkeypatch):
    """Stages may return markdown inline or as a file with its own image links; both land in report.md."""

    def inline_stage(out: Path, quick: bool, earlier: dict) -> dict:
        assert earlier == {}
        out.mkdir(parents=True, exist_ok=True)
        (out / "a.png").write_bytes(b"\x89PNG")
        return {"markdown": f"inline table quick={quick}", "plot": out / "a.png", "value": 1.5}

    def file_stage(out: Path, quick: bool, earlier: dict) -> dict:
        assert earlier["one"]["value"] == 1.5  # each stage sees the results of the stages before it
        out.mkdir(parents=True, exist_ok=True)
        (out / "b.png").write_bytes(b"\x89PNG")
        (out / "frag.md").write_text("### Stage B\n\n| x |\n| --- |\n| 2 |\n\n![plot](b.png)\n")
        return {"markdown": str(out / "frag.md"), "png": str(out / "b.png")}

    monkeypatch.setattr(demo, "STAGES", [("one", "Stage one", inline_stage, "push one"),
                                         ("two", "Stage two", file_stage, "push two")])
    report = demo.run_all(tmp_path, quick=True)
    text = report.read_text()
    assert "inline table quick=True" in text and "![a](one/a.png)" in text
    assert "#### Stage B" in text and "![plot](two/b.png)" in text and "push two" in text
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["one"]["value"] == 1.5 and summary["two"]["png"].endswith("b.png")


def test_demo_checks_its_output_folder_before_any_work(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit) as exc:
        demo_command.main(["--out", str(tmp_path / "file")])
    assert exc.value.code == 2 and "is a file" in capsys.readouterr().err
    # a folder that cannot be created even by root: its parent is a file
    with pytest.raises(SystemExit) as exc:
        demo_command.main(["--out", str(tmp_path / "file" / "sub")])
    assert exc.value.code == 2 and "not writable" in capsys.readouterr().err
    assert not any(p.name != "file" for p in tmp_path.iterdir())
