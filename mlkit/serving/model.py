"""The model a server holds: loaded once, verified, with its schema and a fast predict.

``MODEL`` is ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` (the registry),
a folder packaged by :func:`mlkit.registry.package` (its manifest is verified), or an MLflow
model folder logged by plain MLflow outside the kit (scikit-learn flavor). A plain skops
model is loaded trusting mlkit's allowlist plus the types you name with ``trust``; a
pickled one only with ``allow_pickle=True``, because loading a pickle runs its code.
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

    def predict(self, batch: Batch) -> list:
        """Predictions as plain Python values (JSON-ready), one per row."""
        return self.predict_batch(batch).tolist()


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
    from mlkit.onnx_export import OnnxPredictor

    predictor = OnnxPredictor(onnx_bytes)
    inputs = predictor._inputs  # ONNX input name -> column name
    numeric = set(predictor.numeric_columns)
    fills = predictor._fill
    label = predictor._label
    classes = predictor.classes_
    session = predictor.session

    def run(batch: Batch) -> np.ndarray:
        feed = {}
        for name, col in inputs.items():
            values = batch.columns[col]
            if col in numeric:
                feed[name] = values.reshape(-1, 1)
            else:
                text = np.where(values == values, values, fills.get(col, "missing"))  # NaN -> the imputer's fill
                feed[name] = text.astype(object).reshape(-1, 1)
        out = session.run([label], feed)[0].ravel()
        if classes is not None:
            return out.astype(classes.dtype, copy=False)
        return out.astype(np.float64, copy=False)

    return run


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
        else:
            pipeline = loaded.model
            predict = lambda batch: np.asarray(pipeline.predict(batch.frame()))  # noqa: E731
        return ServedModel(label, version, schema, task, runtime, model, predict, loaded.card, output_type)

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
    else:
        predict = lambda batch: np.asarray(pipeline.predict(batch.frame()))  # noqa: E731
    return ServedModel(name or folder.name, "local", schema, task, runtime, model, predict, {}, _output_type(meta))
