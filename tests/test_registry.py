"""Packaging and the MLflow registry: allowlist, integrity, ONNX parity, card, fingerprint, aliases.

Every test runs against a temporary tracking URI (a SQLite file in tmp_path), never the
repository's .mlkit store.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import skops.io as sio
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import SVC

from mlkit import datasets, evaluation, packaging, registry, training, usecases
from mlkit.errors import ParameterError


class Payload:
    """A class from outside scikit-learn: skops would have to build it to load the file."""

    def __init__(self):
        self.note = "loaded"


@pytest.fixture(scope="module")
def fraud():
    uc = usecases.get("finance-fraud")
    model, parts = training.train(uc, datasets.load(uc, n=3000), seed=0)
    fit = pd.concat([parts.train, parts.validation])
    baseline = training.build_pipeline(uc, fit, family="baseline").fit(*training.xy(fit, uc))
    assessment = evaluation.assess(uc, model, baseline, parts.test, n_resamples=200, slice_by="channel")
    return uc, model, fit, parts, assessment


@pytest.fixture(scope="module")
def packaged(fraud, tmp_path_factory):
    uc, model, fit, parts, assessment = fraud
    folder = tmp_path_factory.mktemp("package") / "model"
    return registry.package(model, folder, use_case=uc, fit_rows=fit, test_rows=parts.test,
                            assessment=assessment, data={"source": "generator", "seed": 0})


@pytest.fixture
def store(tmp_path):
    with registry.use_store(f"sqlite:///{tmp_path}/mlflow.db") as uri:
        yield uri


# --------------------------------------------------------------------------- allowlist


def test_allowlist_is_per_family_and_lives_in_code():
    linear, boosting = set(packaging.trusted_types("linear")), set(packaging.trusted_types("boosting"))
    assert "sklearn.linear_model._logistic.LogisticRegression" in linear
    assert not any("HistGradientBoosting" in t for t in linear)
    assert any(t.endswith("HistGradientBoostingClassifier") for t in boosting)
    with pytest.raises(ParameterError, match="Unknown model family 'svm'"):
        packaging.trusted_types("svm")


def test_a_type_outside_the_family_is_refused_by_name(tmp_path):
    model = SVC().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    path = tmp_path / "svc.skops"
    path.write_bytes(sio.dumps(model))
    with pytest.raises(packaging.UntrustedTypeError, match=r"'sklearn\.svm\._classes\.SVC'.*'linear'"):
        packaging.load_skops(path, family="linear")
    with pytest.raises(packaging.UntrustedTypeError, match="not in any mlkit model family"):
        packaging.dump_skops(model, tmp_path / "refused.skops")
    assert not (tmp_path / "refused.skops").exists()


def test_a_function_or_foreign_class_in_the_file_is_refused(tmp_path):
    calls_system = Pipeline([("step", FunctionTransformer(func=os.system))])
    path = tmp_path / "function.skops"
    path.write_bytes(sio.dumps(calls_system))
    with pytest.raises(packaging.UntrustedTypeError, match="system"):
        packaging.load_skops(path, family="linear")
    path.write_bytes(sio.dumps({"payload": Payload()}))
    with pytest.raises(packaging.UntrustedTypeError, match=r"test_registry\.Payload"):
        packaging.load_skops(path, family="boosting")


def test_a_file_that_is_not_skops_is_an_integrity_error(tmp_path):
    path = tmp_path / "model.skops"
    path.write_bytes(b"not a zip file")
    with pytest.raises(packaging.IntegrityError, match="not a readable skops file"):
        packaging.load_skops(path, family="linear")


# --------------------------------------------------------------------------- the package


def test_package_holds_every_artifact_listed_in_the_manifest(packaged):
    names = {p.name for p in packaged.iterdir()}
    assert {"MLmodel", "model.skops", "model.onnx", "onnx_parity.json", "model_card.md", "model_card.json",
            "fingerprint.json", "manifest.json", "input_example.json"} <= names
    manifest = json.loads((packaged / "manifest.json").read_text())
    assert set(manifest["files"]) == names - {"manifest.json"}
    assert packaging.verify_manifest(packaged) == sorted(manifest["files"])


def test_onnx_parity_on_held_out_rows(packaged, fraud):
    parity = json.loads((packaged / "onnx_parity.json").read_text())
    assert parity["rows"] == len(fraud[3].test)
    assert parity["labels_identical"] and parity["passed"]
    assert parity["max_abs_diff"] <= 1e-5


def test_model_card_is_built_from_what_was_recorded(packaged, fraud):
    uc, model, fit, parts, assessment = fraud
    card = json.loads((packaged / "model_card.json").read_text())
    assert card["use_case"] == uc.id and card["family"] == "boosting"
    assert card["data"]["sha256"] == datasets.sha256(fit) and card["data"]["rows"] == len(fit)
    interval = assessment.intervals[uc.primary_metric]
    assert card["metrics"][uc.primary_metric] == {k: round(interval[k], 4) for k in ("point", "low", "high")}
    assert card["gate"]["verdict"] == assessment.verdict
    assert [row["channel"] for row in card["slices"]] == assessment.slices["channel"].tolist()
    assert card["onnx_parity"]["passed"] is True
    assert card["libraries"]["scikit-learn"] and card["libraries"]["mlflow"]
    assert any("customer_id" in note for note in card["limitations"])
    markdown = (packaged / "model_card.md").read_text()
    assert f"**Deployment gate:** {assessment.verdict}." in markdown
    assert card["data"]["sha256"] in markdown


def test_fingerprint_describes_the_training_rows(packaged, fraud):
    uc, model, fit, parts, _ = fraud
    fp = json.loads((packaged / "fingerprint.json").read_text())
    cols = training.feature_columns(fit, uc)
    assert fp["rows"] == len(fit)
    assert set(fp["numeric"]) == set(cols.numeric) and set(fp["categorical"]) == set(cols.categorical)
    amount = fp["numeric"]["amount"]
    assert sum(amount["counts"]) + amount["missing"] == len(fit)
    assert fp["categorical"]["channel"]["frequencies"] == fit["channel"].value_counts().to_dict()
    assert fp["scores"]["kind"] == "probability"


def test_signature_lists_the_features_and_no_personal_data(packaged, fraud):
    uc = fraud[0]
    import yaml

    meta = yaml.safe_load((packaged / "MLmodel").read_text())
    columns = [c["name"] for c in json.loads(meta["signature"]["inputs"])]
    assert columns == training.feature_columns(fraud[2], uc).features
    assert "customer_id" not in columns
    assert meta["flavors"]["sklearn"]["serialization_format"] == "skops"


def test_plain_mlflow_can_load_the_package(packaged, fraud, monkeypatch):
    """The folder is a normal MLflow model, so `mlflow models serve` can serve it."""
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    X = training.xy(fraud[3].test, fraud[0])[0].head(20)
    numeric = training.feature_columns(fraud[2], fraud[0]).numeric
    predicted = mlflow.pyfunc.load_model(str(packaged)).predict(X.astype({c: "float64" for c in numeric}))
    assert list(predicted) == list(fraud[1].predict(X))


def test_package_refuses_a_folder_with_files_and_rows_without_target(fraud, tmp_path):
    uc, model, fit, parts, _ = fraud
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(ParameterError, match="already holds files"):
        registry.package(model, tmp_path / "busy", use_case=uc, fit_rows=fit, test_rows=parts.test)
    with pytest.raises(Exception, match="no target column 'is_fraud'"):
        registry.package(model, tmp_path / "new", use_case=uc, fit_rows=fit, test_rows=parts.test.drop(columns="is_fraud"))


# --------------------------------------------------------------------------- integrity


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["model.skops", "model.onnx", "model_card.md", "MLmodel", "fingerprint.json"])
def test_one_changed_byte_is_refused(packaged, tmp_path, name):
    copy = Path(shutil.copytree(packaged, tmp_path / "copy"))
    registry.load(copy)  # the untouched copy loads
    _flip_one_byte(copy / name)
    with pytest.raises(packaging.IntegrityError, match=rf"{name} .*does not match its sha256"):
        registry.load(copy)


def test_missing_extra_and_unlisted_files_are_refused(packaged, tmp_path):
    copy = Path(shutil.copytree(packaged, tmp_path / "copy"))
    (copy / "model.onnx").unlink()
    with pytest.raises(packaging.IntegrityError, match="model.onnx is listed in the manifest but missing"):
        registry.load(copy)
    copy = Path(shutil.copytree(packaged, tmp_path / "copy2"))
    (copy / "loader.py").write_text("import os")
    with pytest.raises(packaging.IntegrityError, match="loader.py .* not in the manifest"):
        registry.load(copy)
    copy = Path(shutil.copytree(packaged, tmp_path / "copy3"))
    (copy / "manifest.json").unlink()
    with pytest.raises(packaging.IntegrityError, match="has no manifest.json"):
        registry.load(copy)


def test_a_swapped_model_with_a_rewritten_manifest_is_still_refused(packaged, tmp_path):
    copy = Path(shutil.copytree(packaged, tmp_path / "copy"))
    (copy / "model.skops").write_bytes(sio.dumps({"payload": Payload()}))
    packaging.write_manifest(copy)  # an attacker who rewrites the manifest passes the hash check...
    with pytest.raises(packaging.UntrustedTypeError, match="Payload"):  # ...but not the allowlist
        registry.load(copy)


# --------------------------------------------------------------------------- registry


def test_store_is_a_sqlite_file_with_artifacts_beside_it(store, packaged, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    registry.log_model(packaged, name="fraud")
    assert (tmp_path / "mlflow.db").is_file()
    assert list((tmp_path / "artifacts").rglob("model.skops"))
    assert not (tmp_path / "mlruns").exists()


def test_default_store_is_in_the_repository(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert registry.tracking_uri() == f"sqlite:///{Path(__file__).resolve().parents[1] / '.mlkit' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////tmp/elsewhere.db")
    assert registry.tracking_uri() == "sqlite:////tmp/elsewhere.db"


def test_registry_round_trip_with_aliases_promotion_and_rollback(store, packaged, fraud):
    first = registry.log_model(packaged, name="fraud", params={"seed": 0}, alias="champion")
    second = registry.log_model(packaged, name="fraud", alias="challenger")
    assert (first.version, second.version) == (1, 2)

    champion = registry.load("models:/fraud@champion")
    assert (champion.version, champion.aliases, champion.family) == (1, ["champion"], "boosting")
    X = training.xy(fraud[3].test, fraud[0])[0]
    assert (champion.model.predict_proba(X) == fraud[1].predict_proba(X)).all()
    assert champion.fingerprint["rows"] == len(fraud[2])
    assert champion.onnx().predict(X).tolist() == fraud[1].predict(X).tolist()

    table = registry.versions("fraud")
    assert table["version"].tolist() == [2, 1]
    assert table["aliases"].tolist() == ["challenger", "champion"]
    assert set(table["onnx_parity"]) == {"passed"}
    assert table.loc[0, "test_primary"] == pytest.approx(fraud[4].intervals["average_precision"]["point"], abs=1e-4)

    assert registry.promote("fraud") == 2
    assert registry.versions("fraud")["aliases"].tolist() == ["champion", ""]
    assert registry.load("models:/fraud@champion").version == 2
    with pytest.raises(registry.RegistryError, match="no alias 'challenger'"):
        registry.load("models:/fraud@challenger")

    assert registry.rollback("fraud") == 1
    assert registry.load("models:/fraud@champion").version == 1
    assert registry.load("models:/fraud/2").version == 2
    with pytest.raises(registry.RegistryError, match="no earlier champion"):
        registry.rollback("fraud")


def test_a_tampered_registered_artifact_is_refused(store, packaged, tmp_path):
    registry.log_model(packaged, name="fraud", alias="champion")
    stored = next((tmp_path / "artifacts").rglob("model.skops"))
    _flip_one_byte(stored)
    with pytest.raises(packaging.IntegrityError, match="model.skops .*does not match"):
        registry.load("models:/fraud@champion")
    packaging.write_manifest(stored.parent)  # a rewritten manifest no longer matches the registry's record
    with pytest.raises(packaging.IntegrityError, match="differs from the one recorded in the registry"):
        registry.load("models:/fraud@champion")


def test_registry_errors_name_what_exists(store, packaged):
    registry.log_model(packaged, name="fraud", alias="champion")
    with pytest.raises(registry.RegistryError, match="No registered model named 'fruad'.*registered: fraud"):
        registry.load("models:/fruad@champion")
    with pytest.raises(registry.RegistryError, match="no alias 'production'; its aliases: champion"):
        registry.load("models:/fraud@production")
    with pytest.raises(registry.RegistryError, match="no version 7"):
        registry.set_alias("fraud", "challenger", 7)
    with pytest.raises(ParameterError, match="Cannot read model URI"):
        registry.load("models:/fraud")
    with pytest.raises(ParameterError, match="not valid"):
        registry.set_alias("fraud", "two words", 1)
    with pytest.raises(registry.RegistryError, match="no alias 'challenger'"):
        registry.promote("fraud")


# --------------------------------------------------------------------------- command line


def test_models_command_lists_promotes_rolls_back_and_verifies(store, packaged, tmp_path, capsys):
    from mlkit import cli

    registry.log_model(packaged, name="fraud", alias="champion")
    registry.log_model(packaged, name="fraud", alias="challenger")
    assert cli.main(["models", "versions", "fraud", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["aliases"]) for r in rows] == [(2, "challenger"), (1, "champion")]
    assert cli.main(["models", "promote", "fraud"]) == 0
    assert "champion -> version 2" in capsys.readouterr().out
    assert cli.main(["models", "rollback", "fraud"]) == 0
    assert "rolled back to version 1" in capsys.readouterr().out
    assert cli.main(["models", "alias", "fraud", "--alias", "challenger", "--version", "2"]) == 0
    assert cli.main(["models", "verify", "models:/fraud@champion"]) == 0
    assert "fraud version 1: every file matches its manifest" in capsys.readouterr().out

    copy = Path(shutil.copytree(packaged, tmp_path / "copy"))
    _flip_one_byte(copy / "model.onnx")
    assert cli.main(["models", "verify", str(copy)]) == 2
    assert "model.onnx" in capsys.readouterr().err
    assert cli.main(["models", "promote", "nope"]) == 2
    assert "No registered model named 'nope'" in capsys.readouterr().err


def test_model_names_mlflow_refuses_are_a_clear_error(store, packaged):
    with pytest.raises(ParameterError, match="cannot be registered.*model_name"):
        registry.log_model(packaged, name="mlkit-csv:iris.csv")
    assert registry.model_name("csv:iris.csv") == "mlkit-csv-iris.csv"
    assert registry.log_model(packaged, name=registry.model_name("csv:iris.csv")).version == 1


def _register_in(args):
    uri, folder, name = args
    with registry.use_store(uri):
        return name, registry.log_model(folder, name=name, alias="champion").version


def test_parallel_runs_can_open_and_write_one_new_store(packaged, tmp_path):
    """An instructor's batch runs notebook 04 two at a time against one SQLite file."""
    import multiprocessing

    uri = f"sqlite:///{tmp_path}/shared/mlflow.db"
    jobs = [(uri, str(packaged), name) for name in ("a", "b", "a", "b")]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        done = pool.map(_register_in, jobs)
    assert sorted(v for n, v in done if n == "a") == [1, 2] and sorted(v for n, v in done if n == "b") == [1, 2]
    with registry.use_store(uri):
        assert registry.versions("a")["version"].tolist() == [2, 1]


def _schema(db: Path) -> tuple:
    """Tables and indexes with their definitions, and the migration head. A definition's lines are
    compared as a set: MLflow's own migrations list a table's constraints in a varying order."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index') ORDER BY name").fetchall()
        head = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    return [(name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines())) for name, sql in rows], head


def test_a_new_store_is_copied_from_an_empty_one_with_mlflows_own_schema(tmp_path, monkeypatch):
    """A fresh store skips MLflow's migrations (a copy), yet has exactly the tables MLflow builds."""
    from mlflow import MlflowClient

    monkeypatch.setenv("MLKIT_ROOT", str(tmp_path / "root"))
    (tmp_path / "root").mkdir()
    built = tmp_path / "built" / "mlflow.db"
    built.parent.mkdir()
    MlflowClient(tracking_uri=f"sqlite:///{built}").search_experiments()  # MLflow's own migrations

    with registry.use_store(f"sqlite:///{tmp_path}/first/mlflow.db"):
        pass
    assert list((tmp_path / "root" / ".mlkit" / "cache").glob("mlflow-*-empty.db")), "the empty store is kept"
    with registry.use_store(f"sqlite:///{tmp_path}/second/mlflow.db"):
        experiments = {e.name: e.artifact_location for e in registry.client().search_experiments()}
    assert _schema(tmp_path / "second" / "mlflow.db") == _schema(built)
    assert experiments == {"mlkit": (tmp_path / "second" / "artifacts").as_uri(),
                           "Default": (tmp_path / "second" / "artifacts").as_uri() + "/0"}


def test_a_store_is_still_created_when_the_cache_cannot_be_written(tmp_path, monkeypatch):
    monkeypatch.setenv("MLKIT_ROOT", str(tmp_path / "root"))
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / ".mlkit").write_text("a file where the cache folder would go")
    with registry.use_store(f"sqlite:///{tmp_path}/s/mlflow.db"):
        assert [e.name for e in registry.client().search_experiments()] == ["mlkit", "Default"]
