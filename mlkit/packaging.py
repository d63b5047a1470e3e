"""Safe model artifacts: skops with mlkit's own allowlist, a sha256 manifest, and the model card.

Pickle runs code while it loads, so a model file from anywhere else is a program you run.
skops stores the same estimator as data (a zip of JSON and numpy arrays) and, when it
loads, builds only the types it is told to trust. The list of trusted types lives here, in
mlkit's code, one list per model family; it is never read from the artifact (a file that
names its own trusted types could name anything).

Every file of a packaged model is listed with its sha256 in ``manifest.json``;
:func:`verify_manifest` runs before anything is loaded, so one changed byte is refused.

Examples
--------
>>> import tempfile, pathlib
>>> from sklearn.linear_model import LogisticRegression
>>> model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = dump_skops(model, pathlib.Path(tmp) / "model.skops", family="linear")
...     manifest = write_manifest(tmp)
...     verify_manifest(tmp)
...     loaded = load_skops(path, family="linear")
['model.skops']
>>> loaded.predict([[2.5]]).tolist()
[1]
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlkit.errors import MlkitError, ParameterError

__all__ = [
    "MANIFEST_NAME",
    "UntrustedTypeError",
    "IntegrityError",
    "family_of",
    "trusted_types",
    "types_in",
    "dump_skops",
    "load_skops",
    "sha256_file",
    "write_manifest",
    "verify_manifest",
    "library_versions",
    "model_card",
    "render_model_card",
]

MANIFEST_NAME = "manifest.json"
"""The file, inside a packaged model's folder, that lists every other file's sha256."""

_IGNORED = {MANIFEST_NAME, "registered_model_meta"}
"""Files a manifest does not list: itself, and the marker MLflow writes when it downloads a version."""


class UntrustedTypeError(MlkitError):
    """A skops file holds a type that is not on mlkit's allowlist for its model family."""


class IntegrityError(MlkitError):
    """A packaged model's files do not match their manifest: changed, missing or unlisted."""


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _common_types() -> set[str]:
    """Containers, numpy values and the preprocessing steps every mlkit pipeline uses."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    builtins = {dict, list, tuple, set, str, int, float, bool, slice, type(None)}
    numpy_types = {np.ndarray, np.dtype, np.float64, np.float32, np.int64, np.int32, np.uint64, np.bool_, np.str_}
    steps = {Pipeline, ColumnTransformer, SimpleImputer, MissingIndicator, StandardScaler, OneHotEncoder}
    return {_name(t) for t in builtins | numpy_types | steps}


def _family_types() -> dict[str, set[str]]:
    import numpy as np
    from sklearn._loss import link, loss
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import LabelEncoder

    # The losses and links gradient boosting keeps (binomial, multinomial, squared error, ...):
    # every class of scikit-learn's own loss modules, and the compiled loss each one wraps.
    losses = {c for c in vars(loss).values() if isinstance(c, type) and issubclass(c, loss.BaseLoss)}
    compiled = set()
    for c in losses:
        try:
            compiled.add(type(c().closs))
        except TypeError:  # a loss that needs arguments (quantile): not one mlkit trains
            continue
    links = {c for c in vars(link).values() if isinstance(c, type) and c.__module__ == link.__name__}
    boosting = {HistGradientBoostingClassifier, HistGradientBoostingRegressor, _BinMapper, TreePredictor,
                LabelEncoder, np.random.Generator, np.random.PCG64}
    return {
        "baseline": {_name(t) for t in (DummyClassifier, DummyRegressor)},
        "linear": {_name(t) for t in (LogisticRegression, Ridge)},
        "boosting": {_name(t) for t in boosting | losses | compiled | links},
    }


_ALLOWLIST: dict[str, frozenset[str]] | None = None


def _allowlist() -> dict[str, frozenset[str]]:
    global _ALLOWLIST
    if _ALLOWLIST is None:
        common = _common_types()
        _ALLOWLIST = {family: frozenset(common | extra) for family, extra in _family_types().items()}
    return _ALLOWLIST


def trusted_types(family: str) -> list[str]:
    """The types a skops file of ``family`` may contain, sorted: mlkit's allowlist.

    Examples
    --------
    >>> "sklearn.linear_model._logistic.LogisticRegression" in trusted_types("linear")
    True
    >>> any("HistGradientBoosting" in t for t in trusted_types("linear"))
    False
    """
    allow = _allowlist()
    if family not in allow:
        raise ParameterError(f"Unknown model family {family!r}; mlkit trusts these families: {', '.join(allow)}.")
    return sorted(allow[family])


def family_of(model: Any) -> str:
    """The mlkit model family of a fitted pipeline (or estimator), from its final step's type.

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> family_of(Ridge())
    'linear'
    """
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    name = _name(type(final))
    for family, extra in _family_types().items():
        if name in extra:
            return family
    raise UntrustedTypeError(
        f"The model's final step is {name}, which is not in any mlkit model family "
        f"(baseline, linear, boosting). Build it with mlkit.training.build_pipeline(..., family=...), "
        "or add the type to mlkit.packaging's allowlist after checking it is safe to load."
    )


def _types(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        if "__module__" in node and "__class__" in node:
            found.add(f"{node['__module__']}.{node['__class__']}")
        for value in node.values():
            _types(value, found)
    elif isinstance(node, list):
        for value in node:
            _types(value, found)
    return found


def types_in(source: str | Path | bytes) -> set[str]:
    """Every type a skops file would build, read from its schema (nothing is loaded).

    Raises
    ------
    IntegrityError
        The file is not a skops archive (not a zip, or no ``schema.json`` in it).
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        where = "the bytes" if isinstance(source, bytes) else Path(source).name
        raise IntegrityError(
            f"{where} is not a readable skops file ({exc}); re-save the model with mlkit.packaging.dump_skops."
        ) from None
    return _types(schema, set())


def dump_skops(model: Any, path: str | Path, *, family: str | None = None) -> Path:
    """Save a fitted model with skops, after checking mlkit will be able to load it.

    Refuses (``UntrustedTypeError``) a model holding a type outside its family's allowlist,
    so nothing is saved that :func:`load_skops` would later refuse.
    """
    import skops.io as sio

    family = family or family_of(model)
    data = sio.dumps(model)
    _check_types(types_in(data), family, what="the model")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _check_types(found: Iterable[str], family: str, *, what: str) -> None:
    allowed = set(trusted_types(family))
    untrusted = sorted(set(found) - allowed)
    if untrusted:
        listed = ", ".join(repr(t) for t in untrusted)
        raise UntrustedTypeError(
            f"{what} contains {listed}, which {'is' if len(untrusted) == 1 else 'are'} not on mlkit's allowlist for "
            f"the {family!r} model family, so it is not loaded. Loading runs the construction of every type in "
            "the file; only types listed in mlkit.packaging (per family) are trusted. If you built this model "
            "yourself and trust that type, add it to the allowlist in mlkit/packaging.py."
        )


def load_skops(path: str | Path, *, family: str) -> Any:
    """Load a skops file, trusting only mlkit's allowlist for ``family``.

    Raises
    ------
    UntrustedTypeError
        The file holds a type outside the allowlist; the message names it.
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise IntegrityError(f"No model file at {path}; package the model first (mlkit.registry.package).")
    data = path.read_bytes()
    found = types_in(data)
    _check_types(found, family, what=path.name)
    return sio.loads(data, trusted=sorted(found))


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(directory: Path) -> list[str]:
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.relative_to(directory).as_posix() not in _IGNORED
    )


def write_manifest(directory: str | Path) -> dict[str, Any]:
    """List every file under ``directory`` with its sha256 in ``manifest.json``; return the manifest."""
    directory = Path(directory)
    files = {name: sha256_file(directory / name) for name in _files(directory)}
    manifest = {"format": "mlkit-manifest/1", "algorithm": "sha256", "files": files}
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def verify_manifest(directory: str | Path, *, expected_sha256: str | None = None) -> list[str]:
    """Check every file of a packaged model against ``manifest.json``; return the files checked.

    Parameters
    ----------
    directory
        The packaged model's folder.
    expected_sha256
        The manifest's own sha256 as recorded elsewhere (the registry keeps it as a tag), so a
        manifest rewritten to match changed files is caught too.

    Raises
    ------
    IntegrityError
        The manifest is missing or unreadable, a listed file is missing or changed, or a file
        that is not listed sits beside them. The message names the file.
    """
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    refuse = "Refusing to load it: re-download or re-package the model from a trusted source."
    if not path.is_file():
        raise IntegrityError(f"{directory} has no {MANIFEST_NAME}, so its files cannot be checked. {refuse}")
    raw = path.read_bytes()
    if expected_sha256 is not None and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise IntegrityError(f"{MANIFEST_NAME} in {directory} differs from the one recorded in the registry. {refuse}")
    try:
        listed = json.loads(raw)["files"]
        assert isinstance(listed, dict)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise IntegrityError(f"{MANIFEST_NAME} in {directory} is not a valid manifest. {refuse}") from None
    for name, digest in sorted(listed.items()):
        file = directory / name
        if not file.is_file():
            raise IntegrityError(f"{name} is listed in the manifest but missing from {directory}. {refuse}")
        if sha256_file(file) != digest:
            raise IntegrityError(
                f"{name} in {directory} does not match its sha256 in the manifest: the file was changed "
                f"after packaging (even one byte changes the hash). {refuse}"
            )
    extra = sorted(set(_files(directory)) - set(listed))
    if extra:
        raise IntegrityError(f"{', '.join(extra)} in {directory} {'is' if len(extra) == 1 else 'are'} not in the manifest. {refuse}")
    return sorted(listed)


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a packaged model depends on."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in ("scikit-learn", "numpy", "pandas", "skops", "skl2onnx", "onnxruntime", "mlflow", "mlkit"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def model_card(
    *,
    name: str,
    use_case: Any,
    family: str,
    data: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, float]],
    gate: Any = None,
    slices: Any = None,
    parity: Mapping[str, Any] | None = None,
    limitations: Iterable[str] = (),
    intended_use: str | None = None,
) -> dict[str, Any]:
    """A model card, as a JSON-ready dict, from what was recorded about the model.

    Parameters
    ----------
    name
        The registered model's name.
    use_case
        The :class:`mlkit.usecases.UseCase` the model serves.
    family
        The model family (``baseline``, ``linear``, ``boosting``).
    data
        Where the training rows came from: ``source``, ``rows``, ``sha256`` and, if known,
        ``seed``, ``split`` and the ``features``.
    metrics
        Metric name -> ``{"point", "low", "high"}`` on the held-out test set.
    gate
        The :func:`mlkit.evaluation.deployment_gate` table (a DataFrame), or None.
    slices
        The :func:`mlkit.evaluation.slice_metrics` table, or None.
    parity
        The ONNX parity result, or None when no ONNX model was exported.
    limitations
        Known limitations, one sentence each; the use case's own caveats are added.
    intended_use
        What the model is for; by default the use case's description.
    """
    import pandas as pd

    from mlkit.evaluation import gate_verdict

    gate_rows = gate.to_dict(orient="records") if isinstance(gate, pd.DataFrame) else []
    slice_rows = slices.astype(object).where(slices.notna(), None).to_dict(orient="records") if isinstance(slices, pd.DataFrame) else []
    notes = list(limitations)
    if use_case.source == "synthetic":
        notes.append("Trained on synthetic data from mlkit's generator: its patterns are documented, not observed in the world.")
    if use_case.sensitive_columns:
        notes.append(f"Personal-data columns ({', '.join(use_case.sensitive_columns)}) are never model inputs.")
    notes.append("Scores are estimates from one held-out test set: read the 95% intervals, not the points.")
    return {
        "format": "mlkit-model-card/1",
        "name": name,
        "use_case": use_case.id,
        "industry": use_case.industry,
        "task": use_case.task,
        "target": use_case.target,
        "family": family,
        "intended_use": intended_use or use_case.description,
        "primary_metric": use_case.primary_metric,
        "data": {k: (list(v) if isinstance(v, tuple) else v) for k, v in data.items()},
        "metrics": {k: {kk: (round(float(vv), 4) if isinstance(vv, (int, float)) else vv) for kk, vv in v.items()
                        if kk in ("point", "low", "high")} for k, v in metrics.items()},
        "gate": {"verdict": gate_verdict(gate) if gate_rows else "not evaluated", "checks": gate_rows},
        "slices": slice_rows,
        "onnx_parity": dict(parity) if parity else None,
        "limitations": notes,
        "libraries": library_versions(),
    }


def _table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["(none)"]
    columns = list(rows[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        out.append("| " + " | ".join("" if row[c] is None else (f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c])) for c in columns) + " |")
    return out


def render_model_card(card: Mapping[str, Any]) -> str:
    """The model card as markdown, for people (the JSON is for programs)."""
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"**Use case:** {card['use_case']} ({card['industry']}), {card['task']} of `{card['target']}`.  ",
        f"**Model family:** {card['family']}.  ",
        f"**Deployment gate:** {card['gate']['verdict']}.",
        "",
        "## Intended use",
        "",
        card["intended_use"],
        "",
        "## Data",
        "",
        *[f"- {key}: {', '.join(map(str, value)) if isinstance(value, list) else value}" for key, value in card["data"].items()],
        "",
        f"## Metrics on the held-out test set (95% bootstrap intervals; primary: {card['primary_metric']})",
        "",
        *_table([{"metric": k, **v} for k, v in card["metrics"].items()]),
        "",
        "## Deployment gate",
        "",
        *_table(card["gate"]["checks"]),
        "",
        "## Metrics by slice",
        "",
        *_table(card["slices"]),
        "",
        "## ONNX export",
        "",
    ]
    parity = card.get("onnx_parity")
    if parity:
        lines.append(
            f"{'Passed' if parity.get('passed') else 'FAILED'}: on {parity.get('rows')} held-out rows, label agreement "
            f"{parity.get('label_agreement')}, largest difference {parity.get('max_abs_diff')} (tolerance {parity.get('tolerance')})."
        )
    else:
        lines.append("No ONNX model was exported.")
    lines += ["", "## Limitations", "", *[f"- {note}" for note in card["limitations"]], "",
              "## Libraries", "", *[f"- {k} {v}" for k, v in card["libraries"].items()], ""]
    return "\n".join(lines)
