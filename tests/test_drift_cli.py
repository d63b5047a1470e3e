"""``mlkit drift``: CSV and Parquet, table or fingerprint references, JSON, HTML and exit codes."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from mlkit import fingerprint
from mlkit.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("drift-cli")
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=3000), "y": rng.normal(size=3000), "c": rng.choice(list("abc"), 3000)})
    same = ref.sample(1500, random_state=1)
    shifted = same.assign(x=same["x"] + 1, y=same["y"] * 3)
    ref.to_csv(tmp / "ref.csv", index=False)
    same.to_parquet(tmp / "same.parquet", index=False)
    shifted.to_csv(tmp / "shifted.csv", index=False)
    fp = fingerprint.fingerprint(ref, None, numeric=["x", "y"], categorical=["c"], task="regression")
    fingerprint.save(fp, tmp / "fp.json")
    return tmp


def test_no_drift_on_a_sample_of_the_reference(files, capsys):
    assert main(["drift", str(files / "ref.csv"), str(files / "same.parquet"), "--fail-on-drift"]) == 0
    assert "no dataset drift: 0 of 3 columns drifted" in capsys.readouterr().out


def test_shifted_columns_are_named_and_fail_on_drift_exits_1(files, capsys):
    assert main(["drift", str(files / "ref.csv"), str(files / "shifted.csv"), "--fail-on-drift"]) == 1
    out = capsys.readouterr().out
    assert "dataset drift: 2 of 3 columns drifted" in out and out.rstrip().endswith(": x, y")
    assert main(["drift", str(files / "ref.csv"), str(files / "shifted.csv")]) == 0  # reported, not failed


def test_json_and_a_fingerprint_reference(files, capsys):
    assert main(["drift", str(files / "fp.json"), str(files / "shifted.csv"), "--json", "--statistic", "ks",
                 "--correction", "bh"]) == 0
    report = json.loads(capsys.readouterr().out)
    drifted = {row["column"] for row in report["columns"] if row["drifted"]}
    assert drifted == {"x", "y"} and report["dataset_drift"] is True


def test_html_report_is_self_contained(files, capsys):
    html = files / "report" / "drift.html"
    assert main(["drift", str(files / "ref.csv"), str(files / "shifted.csv"), "--html", str(html)]) == 0
    text = html.read_text(encoding="utf-8")
    assert "data:image/png;base64," in text and "<table" in text and "dataset drift" in text
    assert "<script" not in text.lower() and not re.search(r"(src|href)=\"https?://", text)


@pytest.mark.parametrize("args, says", [
    (["missing.csv", "shifted.csv"], "does not exist"),
    (["ref.csv", "notes.txt2"], "neither .csv nor .parquet"),
    (["ref.csv", "shifted.csv", "--columns", "nope"], "nope"),
    (["ref.csv", "broken.parquet"], "could not be read"),
])
def test_bad_input_exits_2_with_a_clear_message(files, capsys, args, says):
    (files / "notes.txt2").write_text("x\n1\n")
    (files / "broken.parquet").write_bytes(b"PAR1 not really")
    assert main(["drift", *[str(files / a) if not a.startswith("-") and a != "nope" else a for a in args]]) == 2
    assert says in capsys.readouterr().err
