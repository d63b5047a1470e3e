"""The model a server holds: loaded once, verified, with its schema and a fast predict.

``MODEL`` is ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` (the registry),
a folder packaged by :func:`mlkit.registry.package` (its manifest is verified), or an MLflow
model folder logged by plain MLflow outside the kit (scikit-learn flavor). A plain skops
model is loaded trusting mlkit's allowlist plus the types you name with ``trust``; a
pickled one only with ``allow_pickle=True``, because loading a pickle runs its code.

A server that logs its predictions also logs a **score** per row, taken from the same model
call as the prediction (:meth:`ServedModel.predict_with_scores`): a classifier's
positive-class probability (binary) or its top-class probability (multiclass); None for a
regressor, and for a classifier whose ``predict`` is not the argmax of its ``predict_proba``
(a tuned decision threshold, an SVC) or that has no ``predict_proba``. The sklearn runtime
then calls ``predict_proba`` instead of ``predict`` and takes each row's label as
``classes_[argmax]``, which is what ``predict`` returns for those estimators (a row whose two
best classes tie to within 1e-9 gets its label from ``predict``, so rounding never changes an
answer); the onnx runtime asks the graph for its ``label`` and ``probabilities`` outputs in
one run. A server that does not log calls ``predict`` only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlkit import packaging
from mlkit.errors import MlkitError, ParameterError
from mlkit.serving.schema import Batch, Schema

__all__ = ["ServedModel", "load_model", "RUNTIMES"]

RUNTIMES = ("sklearn", "onnx")


@dataclass
class ServedModel:
    """A loaded model and what the routes need to know about it."""

    name: str
    version: str
    schema: Schema
    task: str
    runtime: str
    source: str
    predict_batch: Callable[[Batch], np.ndarray]
    card: dict = field(default_factory=dict)
    output_type: str = "double"
    predict_scored: Callable[[Batch], tuple[np.ndarray, np.ndarray | None]] | None = None

    def predict(self, batch: Batch) -> list:
        """Predictions as plain Python values (JSON-ready), one per row."""
        return self.predict_batch(batch).tolist()

    def predict_with_scores(self, batch: Batch) -> tuple[np.ndarray, np.ndarray | None]:
        """The predictions and, from the same model call, one score per row (None: the model has none).

        See the module docstring for what the score is. The predictions are the ones
        :meth:`predict` gives.
        """
        if self.predict_scored is None:
            return np.asarray(self.predict_batch(batch)), None
        return self.predict_scored(batch)


# Final estimators whose predict() is the argmax of predict_proba() (up to rounding, which the
# tie check below settles); anything else logs no score rather than risk a different answer.
_ARGMAX_CLASSIFIERS = {
    "sklearn": {
        "LogisticRegression", "LogisticRegressionCV", "HistGradientBoostingClassifier", "GradientBoostingClassifier",
        "RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier", "ExtraTreeClassifier",
        "BaggingClassifier", "AdaBoostClassifier", "GaussianNB", "MultinomialNB", "BernoulliNB", "ComplementNB",
        "CategoricalNB", "MLPClassifier", "CalibratedClassifierCV", "LinearDiscriminantAnalysis",
        "QuadraticDiscriminantAnalysis", "KNeighborsClassifier",
    },
    "xgboost": {"XGBClassifier"},
    "lightgbm": {"LGBMClassifier"},
}
_TIE = 1e-9


def _argmax_classifier(pipeline: Any) -> bool:
    """True when ``pipeline.predict`` is ``classes_[argmax(predict_proba)]``."""
    if not hasattr(pipeline, "predict_proba") or getattr(pipeline, "classes_", None) is None:
        return False
    final = pipeline
    while hasattr(final, "steps"):  # a Pipeline (possibly nested): its last step decides
        final = final.steps[-1][1]
    cls = type(final)
    if cls.__name__ == "DummyClassifier" and cls.__module__.startswith("sklearn."):
        return getattr(final, "strategy", None) in ("prior", "most_frequent")
    if cls.__name__ == "VotingClassifier" and cls.__module__.startswith("sklearn."):
        return getattr(final, "voting", None) == "soft"
    return cls.__name__ in _ARGMAX_CLASSIFIERS.get(cls.__module__.split(".", 1)[0], ())


def _scores(proba: np.ndarray) -> np.ndarray:
    """The positive-class probability (two classes) or the top-class probability, per row."""
    proba = np.asarray(proba, dtype=np.float64)
    return proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)


def _sklearn_scored(pipeline: Any, task: str) -> Callable[[Batch], tuple[np.ndarray, np.ndarray | None]]:
    """Predictions and scores from one call: predict_proba for an argmax classifier, else predict and no score."""
    if task != "classification" or not _argmax_classifier(pipeline):
        return lambda batch: (np.asarray(pipeline.predict(batch.frame())), None)
    classes = np.asarray(pipeline.classes_)

    def run(batch: Batch) -> tuple[np.ndarray, np.ndarray | None]:
        frame = batch.frame()
        proba = np.asarray(pipeline.predict_proba(frame))
        if proba.ndim != 2 or proba.shape != (batch.n, len(classes)):
            return np.asarray(pipeline.predict(frame)), None
        labels = classes[proba.argmax(axis=1)]
        if proba.shape[1] > 1:  # two best classes (nearly) tied: predict() decides, so the answer never changes
            top2 = np.partition(proba, proba.shape[1] - 2, axis=1)[:, -2:]
            close = np.flatnonzero(top2[:, 1] - top2[:, 0] <= _TIE)
            if close.size:
                labels = labels.copy()
                labels[close] = np.asarray(pipeline.predict(frame.iloc[close]))
        return labels, _scores(proba)

    return run


def _read_mlmodel(folder: Path) -> dict:
    import yaml

    path = folder / "MLmodel"
    if not path.is_file():
        raise ParameterError(f"{folder} is not an MLflow model folder (it has no MLmodel file).")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _signature(meta: dict) -> list[dict]:
    sig = (meta.get("signature") or {}).get("inputs")
    if not sig:
        raise MlkitError("The model has no input signature; log it with one (mlkit.registry.package adds it).")
    return json.loads(sig)


def _output_type(meta: dict) -> str:
    try:
        out = json.loads((meta.get("signature") or {}).get("outputs") or "[]")
        dtype = out[0].get("tensor-spec", {}).get("dtype") or out[0].get("type", "")
    except (ValueError, IndexError, AttributeError):
        return "double"
    return "long" if "int" in str(dtype) else ("string" if dtype in ("object", "str", "string") else "double")


def _plain_sklearn(folder: Path, meta: dict, *, trust: tuple[str, ...], allow_pickle: bool) -> Any:
    """A scikit-learn model logged by plain MLflow: skops with the allowlist, or an explicitly allowed pickle."""
    flavor = (meta.get("flavors") or {}).get("sklearn")
    if not flavor:
        raise MlkitError(
            f"{folder} holds a {', '.join(meta.get('flavors', {})) or 'unknown'} model; mlkit serves scikit-learn models."
        )
    path = folder / flavor["pickled_model"]
    fmt = flavor.get("serialization_format", "pickle")
    if fmt == "skops":
        import skops.io as sio

        found = packaging.types_in(path)
        allowed = set().union(*(packaging.trusted_types(f) for f in ("baseline", "linear", "boosting"))) | set(trust)
        untrusted = sorted(set(sio.get_untrusted_types(file=path)) - allowed)
        if untrusted:
            raise packaging.UntrustedTypeError(
                f"{path.name} needs {', '.join(map(repr, untrusted))}, which mlkit does not trust by default. "
                "If you made this model and trust those types, name them: mlkit serve --trust TYPE (repeatable)."
            )
        return sio.load(path, trusted=sorted(found))
    if not allow_pickle:
        raise packaging.UntrustedTypeError(
            f"{path.name} is a {fmt} file: loading it runs whatever code it holds. Re-save the model with "
            "mlflow.sklearn.save_model(..., serialization_format='skops'), or, only for a model you made yourself, "
            "pass --allow-pickle."
        )
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    import mlflow.sklearn

    return mlflow.sklearn.load_model(str(folder))


def _onnx_predict(onnx_bytes: bytes, schema: Schema, task: str) -> Callable[[Batch], np.ndarray]:
    """The graph's predictions for a batch; ``run.scored`` also returns the scores, from the same run."""
    from mlkit.onnx_export import OnnxPredictor

    predictor = OnnxPredictor(onnx_bytes)
    inputs = predictor._inputs  # ONNX input name -> column name
    numeric = set(predictor.numeric_columns)
    fills = predictor._fill
    label = predictor._label
    classes = predictor.classes_
    session = predictor.session

    def feed(batch: Batch) -> dict:
        feed = {}
        for name, col in inputs.items():
            values = batch.columns[col]
            if col in numeric:
                feed[name] = values.reshape(-1, 1)
            else:
                text = np.where(values == values, values, fills.get(col, "missing"))  # NaN -> the imputer's fill
                feed[name] = text.astype(object).reshape(-1, 1)
        return feed

    def labels(out: np.ndarray) -> np.ndarray:
        out = out.ravel()
        if classes is not None:
            return out.astype(classes.dtype, copy=False)
        return out.astype(np.float64, copy=False)

    def run(batch: Batch) -> np.ndarray:
        return labels(session.run([label], feed(batch))[0])

    def scored(batch: Batch) -> tuple[np.ndarray, np.ndarray | None]:
        out, proba = session.run([label, "probabilities"], feed(batch))
        return labels(out), _scores(proba)

    if predictor.task == "classification":
        run.scored = scored  # type: ignore[attr-defined]
    return run


def _onnx_scored(run: Callable[[Batch], np.ndarray]) -> Callable[[Batch], tuple[np.ndarray, np.ndarray | None]]:
    return getattr(run, "scored", None) or (lambda batch: (run(batch), None))


def load_model(
    model: str | Path,
    *,
    runtime: str = "sklearn",
    name: str | None = None,
    trust: tuple[str, ...] = (),
    allow_pickle: bool = False,
) -> ServedModel:
    """Load, verify and wrap a model for serving (see the module docstring for ``model``)."""
    if runtime not in RUNTIMES:
        raise ParameterError(f"Unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}.")
    model = str(model)
    folder = Path(model)
    if model.startswith("models:/") or (folder / packaging.MANIFEST_NAME).is_file():
        from mlkit import registry

        loaded = registry.load(model)
        schema = Schema.from_signature(loaded.signature)
        task = loaded.card.get("task", "classification")
        version = str(loaded.version) if loaded.version is not None else "local"
        label = name or loaded.name or loaded.card.get("name") or folder.name
        output_type = "long" if task == "classification" and np.asarray(getattr(loaded.model, "classes_", [0])).dtype.kind in "iu" else (
            "string" if task == "classification" else "double")
        if runtime == "onnx":
            if loaded.onnx_bytes is None:
                raise MlkitError(f"{model} has no ONNX model; package it with mlkit.registry.package(..., onnx=True).")
            predict = _onnx_predict(loaded.onnx_bytes, schema, task)
            scored = _onnx_scored(predict)
        else:
            pipeline = loaded.model
            predict = lambda batch: np.asarray(pipeline.predict(batch.frame()))  # noqa: E731
            scored = _sklearn_scored(pipeline, task)
        return ServedModel(label, version, schema, task, runtime, model, predict, loaded.card, output_type, scored)

    if not folder.is_dir():
        raise ParameterError(
            f"{model} is neither a models:/ URI nor a model folder. Use models:/<name>@<alias>, "
            "models:/<name>/<version> or the path of an MLflow model folder."
        )
    meta = _read_mlmodel(folder)
    schema = Schema.from_signature(_signature(meta))
    if runtime == "onnx":
        onnx_file = folder / "model.onnx"
        if not onnx_file.is_file():
            raise MlkitError(f"{folder} has no model.onnx; serve it with --runtime sklearn, or package it with mlkit.")
    pipeline = _plain_sklearn(folder, meta, trust=trust, allow_pickle=allow_pickle)
    task = "classification" if hasattr(pipeline, "classes_") else "regression"
    if runtime == "onnx":
        predict = _onnx_predict((folder / "model.onnx").read_bytes(), schema, task)
        scored = _onnx_scored(predict)
    else:
        predict = lambda batch: np.asarray(pipeline.predict(batch.frame()))  # noqa: E731
        scored = _sklearn_scored(pipeline, task)
    return ServedModel(name or folder.name, "local", schema, task, runtime, model, predict, {}, _output_type(meta),
                       scored)
