"""The command line: arguments map to library calls; errors become one red line and exit 2."""

from __future__ import annotations

import json

import pytest

from mlkit import cli


def test_usecases_table_lists_every_use_case_with_its_metric(capsys):
    assert cli.main(["usecases"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["id", "industry", "task", "rows", "target", "primary_metric"]
    assert any(line.split()[:3] == ["finance-fraud", "finance", "classification"] and line.endswith("average_precision") for line in out)
    assert len(out) == 8


def test_usecases_json_is_machine_readable(capsys):
    assert cli.main(["usecases", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in rows} >= {"retail-demand", "marketing-segments"}
    assert {"industry", "task", "rows", "target", "primary_metric"} <= set(rows[0])


def test_unknown_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_library_errors_become_a_red_line_and_exit_2(capsys, tmp_path):
    assert cli.main(["notebooks", str(tmp_path / "missing.ipynb")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Notebook(s) not found" in err and "Traceback" not in err


def test_datasets_verify_reports_a_match(capsys):
    assert cli.main(["datasets"]) == 0
    assert "datasets match MANIFEST" in capsys.readouterr().out


def test_student_command_writes_editions_without_solutions(tmp_path, capsys, repo_root):
    from mlkit import cli as command

    assert command.main(["student", str(repo_root / "notebooks" / "01_training.ipynb"), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "01_training.ipynb" in out and "3 solutions replaced" in out
    text = (tmp_path / "01_training.ipynb").read_text()
    assert '"solution"' not in text and "Your solution to exercise 1" in text
