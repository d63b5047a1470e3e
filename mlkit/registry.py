"""The one module that talks to MLflow: packaging, tracking, the model registry and aliases.

MLflow keeps runs (parameters, metrics, artifacts) and the model registry (named models,
numbered versions, aliases). mlkit uses a SQLite file by default, so everything works
offline on a laptop: ``sqlite:///<repo>/.mlkit/mlflow.db`` with artifacts in
``.mlkit/artifacts``. Set ``MLFLOW_TRACKING_URI`` to use another store (another SQLite
file, or a tracking server). ``make mlflow-ui`` browses it.

A packaged model is an MLflow model folder (``MLmodel``, the skops file, the signature and
an input example, so ``mlflow models serve`` can serve it) plus what mlkit adds: the ONNX
model and its parity check, the model card (markdown and JSON), the reference fingerprint
and ``manifest.json`` with the sha256 of every file. :func:`load` verifies the manifest
before reading anything, and loads the skops file with mlkit's allowlist of trusted types.

Registry flow: :func:`log_model` registers a new version; aliases name the versions that
matter (``champion`` serves, ``challenger`` waits); :func:`promote` moves ``champion`` to the
challenger, :func:`rollback` moves it back; :func:`versions` lists them with their key
metrics. MLflow's deprecated stages (Staging/Production) are not used.

Examples
--------
>>> import os, tempfile
>>> from mlkit import datasets, training, usecases
>>> uc = usecases.get("healthcare-diagnosis")
>>> model, parts = training.train(uc, datasets.load(uc), family="linear")
>>> with tempfile.TemporaryDirectory() as tmp:
...     with use_store(f"sqlite:///{tmp}/mlflow.db"):
...         folder = package(model, f"{tmp}/package", use_case=uc, fit_rows=parts.train, test_rows=parts.test)
...         first = log_model(folder, name="diagnosis", alias="champion")
...         loaded = load("models:/diagnosis@champion")
>>> first.version, loaded.aliases, loaded.family
(1, ['champion'], 'linear')
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd

from mlkit import fingerprint as fingerprints
from mlkit import packaging, paths, training, usecases
from mlkit.errors import DataError, MlkitError, ParameterError

__all__ = [
    "ALIASES",
    "RegistryError",
    "Registered",
    "LoadedModel",
    "tracking_uri",
    "use_store",
    "model_name",
    "client",
    "package",
    "log_model",
    "download",
    "load",
    "set_alias",
    "promote",
    "rollback",
    "versions",
]

ALIASES = ("champion", "challenger")
"""The aliases mlkit's flows use: ``champion`` is served, ``challenger`` is the candidate."""

EXPERIMENT = "mlkit"
_HISTORY_TAG = "mlkit.champion_history"
_MANIFEST_TAG = "mlkit.manifest_sha256"
_MODEL_DIR = "model"


class RegistryError(MlkitError):
    """A registry operation cannot be done: unknown model, version or alias, or a store problem."""


# --------------------------------------------------------------------------- the store


def tracking_uri() -> str:
    """The tracking and registry URI: ``MLFLOW_TRACKING_URI``, else the repository's SQLite file.

    Examples
    --------
    >>> import os
    >>> saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    >>> tracking_uri().endswith(".mlkit/mlflow.db")
    True
    >>> if saved is not None:
    ...     os.environ["MLFLOW_TRACKING_URI"] = saved
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    return f"sqlite:///{paths.repo_root() / '.mlkit' / 'mlflow.db'}"


def _sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):])
    return None


def _artifact_location(uri: str) -> str | None:
    """Artifacts beside a SQLite store (``<folder>/artifacts``); a server decides its own."""
    if uri.startswith(("http://", "https://")):
        return None
    db = _sqlite_path(uri)
    folder = db.parent / "artifacts" if db else paths.repo_root() / ".mlkit" / "artifacts"
    return folder.resolve().as_uri()


def _quiet() -> None:
    """MLflow and alembic log at INFO and draw progress bars; notebooks want neither."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow  # noqa: F401  (it sets its loggers to INFO when imported: quieten them afterwards)

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"(mlflow|alembic)(\.|$)")


_READY: set[str] = set()


def _template(mlflow_version: str) -> Path:
    """An empty store with MLflow's tables, made once per MLflow version under ``.mlkit/cache``."""
    from mlflow import MlflowClient

    template = paths.repo_root() / ".mlkit" / "cache" / f"mlflow-{mlflow_version}-empty.db"
    if template.exists():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    with paths.file_lock(template):
        if not template.exists():
            building = template.with_name(f"{template.name}.{os.getpid()}.tmp")
            building.unlink(missing_ok=True)
            MlflowClient(tracking_uri=f"sqlite:///{building}").search_experiments()  # runs the migrations
            os.replace(building, template)
    return template


def _seed_sqlite_store(db: Path, uri: str) -> None:
    """Give a new SQLite store MLflow's tables by copying an empty one that already has them.

    MLflow builds a new SQLite store by replaying its schema migrations one by one (about fifty;
    several seconds, paid by every notebook and test that starts a fresh store). The result is
    the same for every new store of one MLflow version, so mlkit builds it once, keeps it in
    ``.mlkit/cache``, and copies it; only the default experiment's artifact folder is set for
    the new place (``<folder>/artifacts/0``, beside the store, like the kit's own experiment).
    When the cache cannot be written, MLflow builds the store as usual.
    """
    if db.exists() and db.stat().st_size:
        return
    import shutil
    import sqlite3

    import mlflow

    try:
        template = _template(mlflow.__version__)
        shutil.copyfile(template, db)
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                         (f"{_artifact_location(uri)}/0",))
    except (OSError, sqlite3.Error, mlflow.exceptions.MlflowException):
        db.unlink(missing_ok=True)  # MLflow creates it from scratch below


def client():
    """An ``MlflowClient`` on :func:`tracking_uri`, with the store created on first use."""
    _quiet()
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if uri in _READY:
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    db = _sqlite_path(uri)
    if db:
        db.parent.mkdir(parents=True, exist_ok=True)
    with paths.file_lock(db) if db else contextlib.nullcontext():  # one process creates the tables
        if db:
            _seed_sqlite_store(db, uri)
        c = MlflowClient(tracking_uri=uri, registry_uri=uri)
        try:
            if c.get_experiment_by_name(EXPERIMENT) is None:
                c.create_experiment(EXPERIMENT, artifact_location=_artifact_location(uri))
        except mlflow.exceptions.MlflowException as exc:
            if c.get_experiment_by_name(EXPERIMENT) is None:
                raise RegistryError(f"Cannot open the MLflow store at {uri}: {exc}. Check MLFLOW_TRACKING_URI.") from None
    _READY.add(uri)
    return c


@contextlib.contextmanager
def use_store(uri: str) -> Iterator[str]:
    """Use another tracking URI inside a ``with`` block (tests, a clean store for a notebook)."""
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        client()
        yield uri
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old
        import mlflow

        mlflow.set_tracking_uri(tracking_uri())
        mlflow.set_registry_uri(tracking_uri())


# --------------------------------------------------------------------------- packaging


def model_name(use_case: usecases.UseCase | str) -> str:
    """The registered name mlkit gives a use case's model: ``mlkit-<id>``, in characters MLflow accepts.

    Examples
    --------
    >>> model_name("finance-fraud")
    'mlkit-finance-fraud'
    >>> model_name(usecases.custom(name="data/iris.csv", target="species", task="classification"))
    'mlkit-csv-data-iris.csv'
    """
    uid = use_case if isinstance(use_case, str) else use_case.id
    return "mlkit-" + re.sub(r"[^A-Za-z0-9._-]+", "-", uid).strip("-")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or re.search(r"[/:%]", name):
        raise ParameterError(
            f"Model name {name!r} cannot be registered: use letters, digits, '.', '_' or '-' "
            "(no '/', ':' or '%'), e.g. mlkit.registry.model_name(use_case)."
        )
    return name


def _scores(model, X: pd.DataFrame, task: str) -> tuple[np.ndarray, str]:
    """The model's output the fingerprint keeps: P(positive), the predicted value, or the class."""
    if task == "classification":
        classes = getattr(model, "classes_", [])
        if len(classes) == 2:
            return model.predict_proba(X)[:, 1], "probability"
        return model.predict(X), "class"
    return model.predict(X), "prediction"


def package(
    model,
    out_dir: str | Path,
    *,
    use_case: usecases.UseCase | str,
    fit_rows: pd.DataFrame,
    test_rows: pd.DataFrame,
    name: str | None = None,
    assessment=None,
    data: Mapping[str, Any] | None = None,
    onnx: bool = True,
    limitations: tuple[str, ...] = (),
) -> Path:
    """Write a fitted pipeline as a self-describing, verifiable MLflow model folder.

    Parameters
    ----------
    model
        A fitted mlkit pipeline (:func:`mlkit.training.train`).
    out_dir
        The folder to create (it must not exist yet, or be empty).
    use_case
        The use case the model serves.
    fit_rows, test_rows
        The rows the model was fitted on (for the reference fingerprint and the data's
        sha256) and held-out rows (for the ONNX parity check, the signature and the example).
    name
        The model's name in the card; by default :func:`model_name`.
    assessment
        :func:`mlkit.evaluation.assess` results for the card (metrics, gate, slices); if
        omitted, the card says the gate was not evaluated.
    data
        Extra facts about the data for the card (``source``, ``seed``, ...).
    onnx
        Also export ``model.onnx`` with skl2onnx and check its parity on ``test_rows``.

    Returns
    -------
    pathlib.Path
        The folder: ``MLmodel``, ``model.skops``, ``model.onnx``, ``model_card.md``,
        ``model_card.json``, ``fingerprint.json``, ``manifest.json`` and MLflow's files.
    """
    _quiet()
    import mlflow.sklearn
    import skops.io as sio
    from mlflow.models import infer_signature

    uc = usecases.get(use_case) if isinstance(use_case, str) else use_case
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ParameterError(f"{out} already holds files; package into a new folder.")
    if out.exists():
        out.rmdir()
    for label, frame in (("fit_rows", fit_rows), ("test_rows", test_rows)):
        if not isinstance(frame, pd.DataFrame) or frame.empty:
            raise DataError(f"{label} must be a non-empty DataFrame of rows with the target column {uc.target!r}.")
        if uc.target not in frame.columns:
            raise DataError(f"{label} has no target column {uc.target!r}; pass the rows before splitting off the target.")
    family = packaging.family_of(model)
    cols = training.feature_columns(fit_rows, uc)
    X_fit, _ = training.xy(fit_rows, uc)
    X_test, _ = training.xy(test_rows, uc)
    # Numeric columns are declared as doubles: the pipeline imputes missing values, and an
    # integer column could not carry one (MLflow would reject a request with a gap).
    features = X_test[cols.features].astype({c: "float64" for c in cols.numeric})
    predictions = model.predict(features)
    signature = infer_signature(features, predictions)
    skops_file = sio.dumps(model)
    packaging._check_types(packaging.types_in(skops_file), family, what="the model")
    untrusted = sio.get_untrusted_types(data=skops_file)
    mlflow.sklearn.save_model(
        model,
        out,
        serialization_format="skops",
        skops_trusted_types=untrusted,  # for MLflow's own loader (`mlflow models serve`); mlkit never reads them
        signature=signature,
        input_example=features.head(2),
        metadata={"mlkit_family": family, "mlkit_use_case": uc.id},
        # Listed, not inferred: MLflow's inference imports the model in a subprocess (seconds).
        pip_requirements=[f"{dist}=={version}" for dist, version in packaging.library_versions().items()
                          if dist in ("scikit-learn", "numpy", "pandas", "skops")],
    )

    parity = None
    if onnx:
        from mlkit import onnx_export

        (out / "model.onnx").write_bytes(onnx_export.to_onnx(model, X_test, name=name or model_name(uc)))
        parity = onnx_export.parity(model, onnx_export.OnnxPredictor(out / "model.onnx"), X_test)
        (out / "onnx_parity.json").write_text(json.dumps(parity, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    scores, kind = _scores(model, X_fit, uc.task)
    fp = fingerprints.fingerprint(X_fit, scores, numeric=cols.numeric, categorical=cols.categorical, task=uc.task,
                                 score_kind=kind)
    fingerprints.save(fp, out / "fingerprint.json")

    from mlkit import datasets

    facts = {"rows": len(fit_rows), "sha256": datasets.sha256(fit_rows), "features": cols.features, **dict(data or {})}
    card = packaging.model_card(
        name=name or model_name(uc),
        use_case=uc,
        family=family,
        data=facts,
        metrics=assessment.intervals if assessment is not None else {},
        gate=assessment.gate if assessment is not None else None,
        slices=assessment.slices if assessment is not None else None,
        parity=parity,
        limitations=limitations,
    )
    (out / "model_card.json").write_text(json.dumps(card, indent=2, sort_keys=True, default=_plain) + "\n", encoding="utf-8")
    (out / "model_card.md").write_text(packaging.render_model_card(card), encoding="utf-8")
    packaging.write_manifest(out)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# --------------------------------------------------------------------------- registry


@dataclass
class Registered:
    """A registered model version: its name, number, run and URI."""

    name: str
    version: int
    run_id: str
    uri: str


def _metrics_of(folder: Path) -> dict[str, float]:
    """The run's metrics, from the card: test intervals, gate result, ONNX parity."""
    card = json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
    out: dict[str, float] = {}
    for metric_name, interval in card["metrics"].items():
        for end, value in interval.items():
            out[f"test_{metric_name}" if end == "point" else f"test_{metric_name}_{end}"] = float(value)
    if card["gate"]["checks"]:
        out["gate_passed"] = float(card["gate"]["verdict"] == "GO")
    parity = card.get("onnx_parity")
    if parity:
        out["onnx_label_agreement"] = float(parity["label_agreement"])
        out["onnx_max_abs_diff"] = float(parity["max_abs_diff"])
        out["onnx_parity_passed"] = float(bool(parity["passed"]))
    return out


def log_model(
    folder: str | Path,
    *,
    name: str,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    alias: str | None = None,
) -> Registered:
    """Log a packaged model folder as an MLflow run and register it as a new version of ``name``.

    The run holds the parameters, the metrics from the model card (test intervals, gate
    result, ONNX parity) plus ``metrics``, and the folder as its ``model`` artifact. The
    version is tagged with the use case, family, gate verdict and the manifest's sha256, which
    :func:`load` checks. ``alias`` (e.g. ``"challenger"``) is set on the new version.
    """
    import mlflow

    _check_name(name)
    folder = Path(folder)
    packaging.verify_manifest(folder)
    card = json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
    manifest_sha = packaging.sha256_file(folder / packaging.MANIFEST_NAME)
    c = client()
    experiment = c.get_experiment_by_name(EXPERIMENT)
    tags = {"mlkit.use_case": card["use_case"], "mlkit.family": card["family"], "mlkit.gate": card["gate"]["verdict"]}
    with mlflow.start_run(experiment_id=experiment.experiment_id, tags=tags) as run:
        if params:
            mlflow.log_params({k: str(v) for k, v in params.items()})
        mlflow.log_metrics({**_metrics_of(folder), **{k: float(v) for k, v in (metrics or {}).items()}})
        mlflow.log_artifacts(str(folder), artifact_path=_MODEL_DIR)
    source = f"runs:/{run.info.run_id}/{_MODEL_DIR}"
    try:
        c.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        c.create_registered_model(name, description=f"mlkit model for {card['use_case']} ({card['task']}).")
    artifact_uri = f"{run.info.artifact_uri}/{_MODEL_DIR}"
    mv = c.create_model_version(name, artifact_uri, run_id=run.info.run_id,
                                tags={**tags, _MANIFEST_TAG: manifest_sha, "mlkit.primary_metric": card["primary_metric"]})
    registered = Registered(name, int(mv.version), run.info.run_id, f"models:/{name}/{mv.version}")
    if alias:
        set_alias(name, alias, registered.version)
    return registered


def _parse_uri(uri: str) -> tuple[str, str | None, int | None]:
    """``models:/name@alias`` or ``models:/name/3`` -> (name, alias, version)."""
    rest = uri[len("models:/"):]
    if "@" in rest:
        name, alias = rest.split("@", 1)
        if name and alias:
            return name, alias, None
    elif "/" in rest:
        name, version = rest.rsplit("/", 1)
        if name and version.isdigit():
            return name, None, int(version)
    raise ParameterError(f"Cannot read model URI {uri!r}: use models:/<name>@<alias> or models:/<name>/<version>.")


def _version(name: str, alias: str | None, version: int | None):
    import mlflow

    c = client()
    try:
        if alias is not None:
            return c.get_model_version_by_alias(name, alias)
        return c.get_model_version(name, str(version))
    except mlflow.exceptions.MlflowException:
        known = [m.name for m in c.search_registered_models()]
        if name not in known:
            raise RegistryError(
                f"No registered model named {name!r} in {tracking_uri()}; registered: {', '.join(known) or 'none'}. "
                "Register one with mlkit.registry.log_model."
            ) from None
        aliases = sorted(c.get_registered_model(name).aliases)
        what = f"alias {alias!r}" if alias is not None else f"version {version}"
        raise RegistryError(f"Model {name!r} has no {what}; its aliases: {', '.join(aliases) or 'none'}.") from None


def download(uri: str | Path, dst: str | Path) -> tuple[Path, Any]:
    """Copy a model's files to ``dst`` and verify them; return the folder and the version (or None).

    ``uri`` is ``models:/<name>@<alias>``, ``models:/<name>/<version>`` or a local folder.
    For a registered version the manifest must also match the sha256 recorded at registration.
    """
    if isinstance(uri, str) and uri.startswith("models:/"):
        import mlflow  # only here: a server loading a folder starts without MLflow's import (about a second)

        name, alias, number = _parse_uri(uri)
        mv = _version(name, alias, number)
        client()
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(dst)))
        packaging.verify_manifest(folder, expected_sha256=mv.tags.get(_MANIFEST_TAG))
        return folder, mv
    folder = Path(uri)
    if not folder.is_dir():
        raise ParameterError(f"{uri} is neither a models:/ URI nor a model folder.")
    packaging.verify_manifest(folder)
    return folder, None


@dataclass
class LoadedModel:
    """A verified, loaded model and everything packaged with it."""

    model: Any
    family: str
    use_case: str
    card: dict
    fingerprint: dict
    signature_columns: list[str]
    onnx_bytes: bytes | None
    signature: list[dict] = field(default_factory=list)
    name: str | None = None
    version: int | None = None
    aliases: list[str] = field(default_factory=list)

    def onnx(self, **kwargs):
        """An :class:`mlkit.onnx_export.OnnxPredictor` on the packaged ONNX model."""
        if self.onnx_bytes is None:
            raise RegistryError("This model was packaged without ONNX (package(..., onnx=True) exports it).")
        from mlkit import onnx_export

        return onnx_export.OnnxPredictor(self.onnx_bytes, **kwargs)


def load(uri: str | Path) -> LoadedModel:
    """Load a packaged model after verifying every file against its manifest.

    Raises
    ------
    IntegrityError
        A file changed since packaging (or the manifest differs from the registry's record).
    UntrustedTypeError
        The skops file holds a type outside mlkit's allowlist for the model's family.
    """
    import yaml

    with tempfile.TemporaryDirectory(prefix="mlkit-model-") as tmp:
        folder, mv = download(uri, tmp)
        meta = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
        family = (meta.get("metadata") or {}).get("mlkit_family")
        if family not in ("baseline", "linear", "boosting"):
            raise packaging.UntrustedTypeError(
                f"{uri} does not say which mlkit model family it is (MLmodel metadata mlkit_family), "
                "so mlkit does not know which types to trust; package it with mlkit.registry.package."
            )
        model = packaging.load_skops(folder / meta["flavors"]["sklearn"]["pickled_model"], family=family)
        signature = json.loads(meta["signature"]["inputs"]) if meta.get("signature") else []
        onnx_file = folder / "model.onnx"
        loaded = LoadedModel(
            model=model,
            family=family,
            use_case=meta["metadata"].get("mlkit_use_case", ""),
            card=json.loads((folder / "model_card.json").read_text(encoding="utf-8")),
            fingerprint=fingerprints.load(folder / "fingerprint.json"),
            signature_columns=[col["name"] for col in signature],
            onnx_bytes=onnx_file.read_bytes() if onnx_file.is_file() else None,
            signature=signature,
        )
    if mv is not None:
        loaded.name, loaded.version, loaded.aliases = mv.name, int(mv.version), sorted(mv.aliases)
    return loaded


def set_alias(name: str, alias: str, version: int) -> None:
    """Point ``alias`` at ``version`` of ``name`` (an alias names one version at a time)."""
    if not alias or not alias.replace("_", "").replace("-", "").isalnum() or alias.isdigit():
        raise ParameterError(f"Alias {alias!r} is not valid: use letters, digits, - or _, e.g. {ALIASES[0]!r}.")
    _version(name, None, int(version))
    client().set_registered_model_alias(name, alias, str(int(version)))


def _history(name: str) -> list[int]:
    tags = client().get_registered_model(name).tags
    return [int(v) for v in json.loads(tags.get(_HISTORY_TAG, "[]"))]


def promote(name: str, version: int | None = None) -> int:
    """Make ``version`` (by default the ``challenger``) the ``champion``; return its number.

    The previous champion is remembered, so :func:`rollback` can restore it; the
    ``challenger`` alias is removed once promoted.
    """
    c = client()
    if version is None:
        version = int(_version(name, "challenger", None).version)
    version = int(version)
    _version(name, None, version)
    aliases = c.get_registered_model(name).aliases
    history = _history(name)
    if "champion" in aliases and int(aliases["champion"]) != version:
        history.append(int(aliases["champion"]))
    c.set_registered_model_tag(name, _HISTORY_TAG, json.dumps(history))
    c.set_registered_model_alias(name, "champion", str(version))
    if aliases.get("challenger") is not None and int(aliases["challenger"]) == version:
        c.delete_registered_model_alias(name, "challenger")
    return version


def rollback(name: str) -> int:
    """Move ``champion`` back to the version it named before the last promotion; return it."""
    c = client()
    history = _history(name)
    if not history:
        raise RegistryError(f"{name!r} has no earlier champion to roll back to: nothing was promoted over one.")
    previous = history.pop()
    c.set_registered_model_tag(name, _HISTORY_TAG, json.dumps(history))
    c.set_registered_model_alias(name, "champion", str(previous))
    return previous


def versions(name: str) -> pd.DataFrame:
    """Every version of ``name`` with its aliases, gate verdict and key metrics, newest first."""
    c = client()
    _version_check = c.search_model_versions(f"name = '{name}'")
    if not _version_check:
        _version(name, None, 1)  # raises the helpful error
    aliases: dict[int, list[str]] = {}
    for alias, number in c.get_registered_model(name).aliases.items():
        aliases.setdefault(int(number), []).append(alias)
    rows = []
    for mv in _version_check:
        run = c.get_run(mv.run_id)
        primary = mv.tags.get("mlkit.primary_metric", "")
        metrics = run.data.metrics
        rows.append({
            "version": int(mv.version),
            "aliases": ", ".join(sorted(aliases.get(int(mv.version), []))),
            "use_case": mv.tags.get("mlkit.use_case", ""),
            "family": mv.tags.get("mlkit.family", ""),
            "gate": mv.tags.get("mlkit.gate", ""),
            "primary_metric": primary,
            "test_primary": metrics.get(f"test_{primary}", np.nan),
            "test_primary_low": metrics.get(f"test_{primary}_low", np.nan),
            "onnx_parity": {1.0: "passed", 0.0: "failed"}.get(metrics.get("onnx_parity_passed"), "none"),
        })
    return pd.DataFrame(rows).sort_values("version", ascending=False, ignore_index=True)
