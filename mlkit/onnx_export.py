"""Export a trained pipeline to ONNX, run it with onnxruntime, and check both predict alike.

ONNX stores a model as a graph of standard operators; onnxruntime runs that graph without
scikit-learn (or Python) on the serving machine. :func:`to_onnx` converts mlkit's pipeline
with skl2onnx, :class:`OnnxPredictor` runs the result on a pandas frame, and :func:`parity`
says whether the two agree on rows you choose.

Everything is float64 end to end, so probabilities agree to within about 1e-12. For three
steps of mlkit's recipe the stock skl2onnx converters are not exact, so this module hands
skl2onnx its own converters, for each conversion only (nothing is registered globally):

- ``SimpleImputer(add_indicator=True)``: skl2onnx ignores the missing-value indicator columns
  (the conversion then fails on a shape mismatch) and imputes float32 values.
- ``OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=20)``: skl2onnx refuses
  infrequent categories of one column and, for several columns, makes onnxruntime fail on a
  category never seen in training.
  Here each level maps to its output column (rare levels and unseen ones to the shared
  ``infrequent`` column, or to no column when there is none), as scikit-learn does.
- ``HistGradientBoosting*``: skl2onnx writes float32 thresholds (and, with onnx 1.23, fails).
  Here the trees are one ``ai.onnx.ml`` 5 ``TreeEnsemble`` with float64 thresholds and leaves,
  followed by the loss's link (sigmoid, softmax, exp) in float64.

Missing categories. A string tensor has no NaN, so :class:`OnnxPredictor` sends a missing
category as the value the pipeline's imputer writes in its place (``"missing"``), which is
what scikit-learn's ``SimpleImputer`` makes of NaN. Like scikit-learn, it does not treat
``None`` in a text column as missing: both see an unknown category. ``pd.NA``, which
scikit-learn refuses, counts as missing.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from mlkit.errors import DataError, MlkitError, ParameterError

__all__ = ["OPSETS", "ConversionError", "to_onnx", "OnnxPredictor", "parity"]

OPSETS = {"": 18, "ai.onnx.ml": 5}
"""Opsets an exported graph may use: ONNX up to 18, and ``ai.onnx.ml`` 5 (its float64 ``TreeEnsemble``)."""

_MODELS = (HistGradientBoostingClassifier, HistGradientBoostingRegressor, LogisticRegression, Ridge)
_WHAT_TO_DO = (
    "Train with family='boosting' or family='linear' (mlkit.training.train), "
    "or keep the skops artifact only (mlkit.packaging.dump_skops)."
)


class ConversionError(MlkitError):
    """Raised when a pipeline has a step that mlkit cannot convert to ONNX exactly.

    Attributes
    ----------
    step : str
        The failing step, e.g. ``"step 'model' (DummyClassifier)"``.
    """

    def __init__(self, message: str, *, step: str = "") -> None:
        super().__init__(message)
        self.step = step


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MlkitError(f"ONNX export needs {module}: pip install skl2onnx onnxruntime") from None


# --- What can be converted ------------------------------------------------------------------


def _steps(transformer: Any) -> list[tuple[str, Any]]:
    return list(transformer.steps) if isinstance(transformer, Pipeline) else [("", transformer)]


def _branch_kind(branch: str, transformer: Any) -> str:
    """``"numeric"`` or ``"categorical"`` for a ColumnTransformer branch mlkit converts exactly."""
    steps = _steps(transformer)
    where = f"ColumnTransformer branch {branch!r}"
    for name, step in steps:
        if not isinstance(step, (SimpleImputer, StandardScaler, OneHotEncoder)):
            raise ConversionError(
                f"{where}, step {name!r} ({type(step).__name__}) has no exact ONNX conversion in mlkit; "
                f"use mlkit.training.build_preprocessor. {_WHAT_TO_DO}",
                step=f"{where} ({type(step).__name__})",
            )
        if isinstance(step, SimpleImputer) and not (
            isinstance(step.missing_values, float) and np.isnan(step.missing_values)
        ):
            raise ConversionError(
                f"{where}: SimpleImputer(missing_values={step.missing_values!r}) cannot be converted; "
                "mark missing values as NaN and keep the default missing_values.",
                step=f"{where} (SimpleImputer)",
            )
    if not any(isinstance(step, OneHotEncoder) for _, step in steps):
        return "numeric"
    kinds = [type(step) for _, step in steps]
    if kinds != [SimpleImputer, OneHotEncoder]:
        raise ConversionError(
            f"{where} ({' -> '.join(k.__name__ for k in kinds)}): a categorical branch must be a "
            "SimpleImputer then a OneHotEncoder, as in mlkit.training.build_preprocessor.",
            step=where,
        )
    imputer, encoder = steps[0][1], steps[1][1]
    if imputer.add_indicator or any(pd.isna(v) for v in imputer.statistics_):
        raise ConversionError(
            f"{where}: the SimpleImputer must fill every text column (no add_indicator); "
            "use strategy='constant' as mlkit.training.build_preprocessor does.",
            step=f"{where} (SimpleImputer)",
        )
    if encoder.drop is not None or encoder.handle_unknown == "error":
        raise ConversionError(
            f"{where}: OneHotEncoder(drop={encoder.drop!r}, handle_unknown={encoder.handle_unknown!r}) "
            "cannot be converted exactly (an ONNX graph cannot refuse a category); use "
            "drop=None and handle_unknown='infrequent_if_exist'.",
            step=f"{where} (OneHotEncoder)",
        )
    return "categorical"


def _check_model(name: str, model: Any) -> None:
    step = f"step {name!r} ({type(model).__name__})"
    if not isinstance(model, _MODELS):
        raise ConversionError(f"{step} has no exact ONNX conversion in mlkit. {_WHAT_TO_DO}", step=step)
    if isinstance(model, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)):
        if any(node["is_categorical"] for trees in model._predictors for tree in trees for node in tree.nodes):
            raise ConversionError(
                f"{step} uses native categorical splits, which mlkit does not convert; one-hot encode "
                "the categories instead (mlkit.training.build_preprocessor does).",
                step=step,
            )
        link = type(model._loss.link).__name__
        if isinstance(model, HistGradientBoostingRegressor) and link not in ("IdentityLink", "LogLink"):
            raise ConversionError(f"{step}: loss {model.loss!r} ({link}) is not converted; use 'squared_error'.", step=step)
    classes = getattr(model, "classes_", None)
    if classes is not None and classes.dtype.kind == "f" and not np.all(np.mod(classes, 1) == 0):
        raise ConversionError(
            f"{step}: class labels {classes[:3].tolist()} are not whole numbers; encode them as integers or text.",
            step=step,
        )


def _inputs(pipeline: Any, X: pd.DataFrame) -> dict[str, str]:
    """Check the pipeline converts exactly; return each used column and its kind, in order."""
    if not isinstance(X, pd.DataFrame):
        raise ParameterError(f"X must be a pandas DataFrame (a sample of the training frame), not {type(X).__name__}.")
    two_steps = isinstance(pipeline, Pipeline) and len(pipeline.steps) == 2
    if not two_steps or not isinstance(pipeline.steps[0][1], ColumnTransformer):
        raise ConversionError(
            f"to_onnx converts mlkit's pipeline (a ColumnTransformer, then a model), as built by "
            f"mlkit.training.build_pipeline; got {type(pipeline).__name__}.",
            step=type(pipeline).__name__,
        )
    try:
        check_is_fitted(pipeline)
    except NotFittedError:
        raise ParameterError("The pipeline is not fitted; train it first (mlkit.training.train).") from None
    (pre_name, pre), (model_name, model) = pipeline.steps
    _check_model(model_name, model)
    if pre.transformer_weights:
        raise ConversionError(f"step {pre_name!r} (ColumnTransformer) has transformer_weights; drop them.", step=pre_name)
    kinds: dict[str, str] = {}
    for branch, transformer, columns in pre.transformers_:
        where = f"ColumnTransformer branch {branch!r}"
        columns = [columns] if isinstance(columns, str) else columns
        if isinstance(transformer, str) and transformer == "drop":
            continue
        if isinstance(columns, slice) or not all(isinstance(c, str) for c in columns):
            raise ConversionError(f"{where} selects columns by position or mask ({columns!r}); select them by name.", step=where)
        columns = list(columns)
        if not columns:
            continue
        if isinstance(transformer, str):
            raise ConversionError(
                f"{where} passes columns {columns} through unchanged; impute and scale or encode them "
                "(mlkit.training.build_preprocessor), or drop them.",
                step=where,
            )
        kind = _branch_kind(branch, transformer)
        for col in columns:
            if kinds.setdefault(col, kind) != kind:
                raise ConversionError(f"Column {col!r} feeds both a numeric and a categorical branch.", step=where)
    missing = [c for c in kinds if c not in X.columns]
    if missing:
        raise DataError(
            f"Column(s) {', '.join(map(repr, missing))} are used by the pipeline but missing from X; "
            "pass a sample of the frame it was trained on."
        )
    for col, kind in kinds.items():
        s = X[col]
        if kind == "numeric" and not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
            raise DataError(f"Column {col!r} feeds a numeric branch but holds {s.dtype} values; convert it to numbers first.")
    return kinds


# --- Converters handed to skl2onnx ----------------------------------------------------------


def _node(scope: Any, container: Any, op_type: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
    output = output or scope.get_unique_variable_name(op_type.lower())
    container.add_node(op_type, inputs, output, name=scope.get_unique_operator_name(op_type), **attrs)
    return output


def _const(scope: Any, container: Any, values: Any, proto: int, shape: list[int] | None = None) -> str:
    name = scope.get_unique_variable_name("const")
    values = np.asarray(values)
    container.add_initializer(name, proto, list(values.shape) if shape is None else shape, values.ravel().tolist())
    return name


def _merged(scope: Any, operator: Any, container: Any) -> str:
    names = [v.full_name for v in operator.inputs]
    return names[0] if len(names) == 1 else _node(scope, container, "Concat", names, axis=1)


def _imputer_shape(operator: Any) -> None:
    op = operator.raw_operator
    keep = op.statistics_.size if op.keep_empty_features else int((~pd.isna(op.statistics_)).sum())
    extra = 0 if op.indicator_ is None else len(op.indicator_.features_)
    operator.outputs[0].type = type(operator.inputs[0].type)([None, keep + extra])


def _imputer_convert(scope: Any, operator: Any, container: Any) -> None:
    """Replace NaN by the learned statistic, in float64; append the indicator columns."""
    from onnx import TensorProto

    op, out = operator.raw_operator, operator.outputs[0].full_name
    x = _merged(scope, operator, container)
    if operator.inputs[0].type.__class__.__name__ == "StringTensorType":
        # OnnxPredictor already sends a missing category as the fill value (see module docstring).
        _node(scope, container, "Identity", [x], out)
        return
    stats = np.asarray(op.statistics_, dtype=np.float64)
    keep = np.arange(stats.size) if op.keep_empty_features else np.flatnonzero(~np.isnan(stats))
    kept = x
    if keep.size < stats.size:  # columns with no value in training: scikit-learn drops them
        kept = _node(scope, container, "Gather", [x, _const(scope, container, keep, TensorProto.INT64)], axis=1)
    fill = _const(scope, container, stats[keep].reshape(1, -1), TensorProto.DOUBLE)
    is_nan = _node(scope, container, "IsNaN", [kept])
    if op.indicator_ is None:
        _node(scope, container, "Where", [is_nan, fill, kept], out)
        return
    imputed = _node(scope, container, "Where", [is_nan, fill, kept])
    flagged_columns = _const(scope, container, op.indicator_.features_, TensorProto.INT64)
    flagged = _node(scope, container, "Gather", [x, flagged_columns], axis=1)
    indicator = _node(scope, container, "Cast", [_node(scope, container, "IsNaN", [flagged])], to=TensorProto.DOUBLE)
    _node(scope, container, "Concat", [imputed, indicator], out, axis=1)


def _one_hot_layout(op: OneHotEncoder, j: int) -> tuple[dict[str, int], int, int]:
    """Level -> output column, the number of columns, and the column of an unseen level (-1: none)."""
    infrequent = getattr(op, "infrequent_categories_", [None] * len(op.categories_))[j]
    rare = set() if infrequent is None else {str(c) for c in infrequent}
    levels = [str(c) for c in op.categories_[j]]
    frequent = [c for c in levels if c not in rare]
    position = {c: i for i, c in enumerate(frequent)}
    column = {c: position.get(c, len(frequent)) for c in levels}  # in the order of categories_: same bytes every run
    unseen = len(frequent) if rare and op.handle_unknown in ("infrequent_if_exist", "warn") else -1
    return column, len(frequent) + bool(rare), unseen


def _one_hot_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    op = operator.raw_operator
    width = sum(_one_hot_layout(op, j)[1] for j in range(len(op.categories_)))
    if width != len(op.get_feature_names_out()):
        message = "OneHotEncoder: mlkit's layout of its output columns differs from scikit-learn's."
        raise ConversionError(message, step="OneHotEncoder")
    operator.outputs[0].type = DoubleTensorType([None, width])


def _one_hot_convert(scope: Any, operator: Any, container: Any) -> None:
    """Per column: level -> output column index (LabelEncoder), then index == range(width)."""
    from onnx import TensorProto

    op = operator.raw_operator
    x = _merged(scope, operator, container)
    blocks = []
    for j in range(len(op.categories_)):
        column, width, unseen = _one_hot_layout(op, j)
        values = _node(scope, container, "Gather", [x, _const(scope, container, [j], TensorProto.INT64)], axis=1)
        index = _node(
            scope, container, "LabelEncoder", [values], op_domain="ai.onnx.ml", op_version=2,
            keys_strings=list(column), values_int64s=list(column.values()), default_int64=unseen,
        )
        hot = _node(scope, container, "Equal", [index, _const(scope, container, np.arange(width), TensorProto.INT64)])
        blocks.append(_node(scope, container, "Cast", [hot], to=TensorProto.DOUBLE))
    _node(scope, container, "Concat", blocks, operator.outputs[0].full_name, axis=1)


def _tree_ensemble(model: Any) -> dict[str, Any]:
    """Attributes of one ``ai.onnx.ml`` 5 TreeEnsemble holding every tree of a HistGradientBoosting model."""
    from onnx import numpy_helper

    roots, features, splits, missing = [], [], [], []
    true_ids, true_leaf, false_ids, false_leaf = [], [], [], []
    targets, weights = [], []
    for iteration in model._predictors:
        for target, tree in enumerate(iteration):
            nodes = tree.nodes
            is_leaf = nodes["is_leaf"].astype(bool)
            # ONNX numbers splits and leaves apart, each across all trees.
            index = np.empty(len(nodes), dtype=np.int64)
            index[is_leaf] = len(weights) + np.arange(is_leaf.sum())
            index[~is_leaf] = len(features) + np.arange((~is_leaf).sum())
            targets += [target] * int(is_leaf.sum())
            weights += nodes["value"][is_leaf].tolist()
            if is_leaf.all():  # a tree that is one leaf: a split whose two branches reach it
                roots.append(len(features))
                features.append(0)
                splits.append(0.0)
                missing.append(0)
                true_ids.append(int(index[0]))
                false_ids.append(int(index[0]))
                true_leaf.append(1)
                false_leaf.append(1)
                continue
            roots.append(int(index[0]))
            inner = nodes[~is_leaf]
            features += inner["feature_idx"].tolist()
            splits += inner["num_threshold"].tolist()
            missing += inner["missing_go_to_left"].astype(int).tolist()
            for ids, leaf, child in ((true_ids, true_leaf, inner["left"]), (false_ids, false_leaf, inner["right"])):
                ids += index[child].tolist()
                leaf += is_leaf[child].astype(int).tolist()
    return {
        "n_targets": int(model.n_trees_per_iteration_),
        "aggregate_function": 1,  # SUM
        "post_transform": 0,  # NONE: the link runs afterwards, in float64
        "tree_roots": roots,
        "nodes_featureids": features,
        "nodes_splits": numpy_helper.from_array(np.asarray(splits, dtype=np.float64)),
        "nodes_modes": numpy_helper.from_array(np.zeros(len(features), dtype=np.uint8)),  # BRANCH_LEQ: x <= split
        "nodes_truenodeids": true_ids,
        "nodes_trueleafs": true_leaf,
        "nodes_falsenodeids": false_ids,
        "nodes_falseleafs": false_leaf,
        "nodes_missing_value_tracks_true": missing,
        "leaf_targetids": targets,
        "leaf_weights": numpy_helper.from_array(np.asarray(weights, dtype=np.float64)),
    }


def _raw_scores(scope: Any, operator: Any, container: Any) -> str:
    """Baseline + sum of the trees: scikit-learn's ``_raw_predict``, shape (n, n_trees_per_iteration)."""
    from onnx import TensorProto

    model = operator.raw_operator
    # skl2onnx 1.20 knows ai.onnx.ml up to 3: it records this node as 3, to_onnx then imports 5.
    trees = _node(
        scope, container, "TreeEnsemble", [operator.inputs[0].full_name], op_domain="ai.onnx.ml", op_version=3,
        **_tree_ensemble(model),
    )
    baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(1, -1)
    return _node(scope, container, "Add", [trees, _const(scope, container, baseline, TensorProto.DOUBLE)])


def _label_proto(classes: np.ndarray) -> tuple[int, list]:
    from onnx import TensorProto

    if classes.dtype.kind in "iubf":  # whole numbers (checked by _check_model)
        return TensorProto.INT64, [int(c) for c in classes]
    return TensorProto.STRING, [str(c).encode("utf-8") for c in classes]


def _boosting_classifier_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType, Int64TensorType, StringTensorType

    classes = operator.raw_operator.classes_
    label = StringTensorType if classes.dtype.kind in "OUS" else Int64TensorType
    operator.outputs[0].type = label([None])
    operator.outputs[1].type = DoubleTensorType([None, len(classes)])


def _boosting_classifier_convert(scope: Any, operator: Any, container: Any) -> None:
    """Probabilities as scikit-learn's loss computes them; labels from the raw scores, as ``predict`` does."""
    from onnx import TensorProto

    model = operator.raw_operator
    raw = _raw_scores(scope, operator, container)
    label, proba = operator.outputs[0].full_name, operator.outputs[1].full_name
    if model.n_trees_per_iteration_ == 1:
        positive = _node(scope, container, "Sigmoid", [raw])
        negative = _node(scope, container, "Sub", [_const(scope, container, [[1.0]], TensorProto.DOUBLE), positive])
        _node(scope, container, "Concat", [negative, positive], proba, axis=1)
        above = _node(scope, container, "Greater", [raw, _const(scope, container, [[0.0]], TensorProto.DOUBLE)])
        above = _node(scope, container, "Cast", [above], to=TensorProto.INT64)
        encoded = _node(scope, container, "Reshape", [above, _const(scope, container, [-1], TensorProto.INT64)])
    else:
        _node(scope, container, "Softmax", [raw], proba, axis=1)
        encoded = _node(scope, container, "ArgMax", [raw], axis=1, keepdims=0)
    proto, classes = _label_proto(model.classes_)
    _node(scope, container, "Gather", [_const(scope, container, classes, proto, shape=[len(classes)]), encoded], label, axis=0)


def _boosting_regressor_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    operator.outputs[0].type = DoubleTensorType([None, 1])


def _boosting_regressor_convert(scope: Any, operator: Any, container: Any) -> None:
    model = operator.raw_operator
    raw = _raw_scores(scope, operator, container)
    link = "Exp" if type(model._loss.link).__name__ == "LogLink" else "Identity"
    _node(scope, container, link, [raw], operator.outputs[0].full_name)


_CONVERTERS = {
    SimpleImputer: (_imputer_convert, _imputer_shape),
    OneHotEncoder: (_one_hot_convert, _one_hot_shape),
    HistGradientBoostingClassifier: (_boosting_classifier_convert, _boosting_classifier_shape),
    HistGradientBoostingRegressor: (_boosting_regressor_convert, _boosting_regressor_shape),
}


# --- Export ---------------------------------------------------------------------------------


def _none_marker(pipeline: Pipeline) -> str:
    """A text that is no category of any column: what a ``None`` category is sent as."""
    levels = {str(c) for enc in _encoders(pipeline) for cats in enc.categories_ for c in cats}
    marker = "<None>"
    while marker in levels:
        marker = f"<{marker}>"
    return marker


def _encoders(pipeline: Pipeline) -> list[OneHotEncoder]:
    pre = pipeline.steps[0][1]
    branches = [t for _, t, _ in pre.transformers_ if not isinstance(t, str)]
    return [s for t in branches for _, s in _steps(t) if isinstance(s, OneHotEncoder) and hasattr(s, "categories_")]


def _fill_values(pipeline: Pipeline, kinds: dict[str, str]) -> dict[str, str]:
    """Categorical column -> the text its imputer writes for a missing value."""
    fills: dict[str, str] = {}
    for _, transformer, columns in pipeline.steps[0][1].transformers_:
        columns = [columns] if isinstance(columns, str) else list(columns)
        if isinstance(transformer, str) or not columns or kinds.get(columns[0]) != "categorical":
            continue
        imputer = _steps(transformer)[0][1]
        fills.update({col: str(value) for col, value in zip(columns, imputer.statistics_)})
    return fills


def to_onnx(pipeline: Pipeline, X: pd.DataFrame, *, name: str = "mlkit") -> bytes:
    """Convert a fitted mlkit pipeline to ONNX, exactly (float64 end to end).

    Parameters
    ----------
    pipeline
        A fitted pipeline from :func:`mlkit.training.train` (family ``"boosting"`` or ``"linear"``).
    X
        A sample of the raw frame the pipeline is fed with. Columns the pipeline drops (the
        target, identifiers, personal data, datetimes) do not become ONNX inputs.
    name
        The graph's name.

    Returns
    -------
    bytes
        The serialized ONNX model: one ``[None, 1]`` input per feature column (float64 for
        numeric and boolean columns, string for categorical ones); outputs ``label`` and
        ``probabilities`` for a classifier, ``variable`` for a regressor. The same pipeline
        gives the same bytes.

    Raises
    ------
    ConversionError
        A step without an exact conversion (a ``Dummy*`` baseline, a transformer outside
        mlkit's recipe); the message names the step.
    DataError
        ``X`` lacks a column the pipeline uses, or a numeric column holds text.

    Examples
    --------
    >>> from mlkit import datasets, training, usecases
    >>> uc = usecases.get("finance-fraud")
    >>> model, parts = training.train(uc, datasets.load(uc, n=300), family="linear", seed=0)
    >>> predictor = OnnxPredictor(to_onnx(model, parts.train))
    >>> predictor.input_columns
    ['amount', 'hour', 'distance_from_home_km', 'account_age_days', 'merchant_category', 'channel']
    >>> parity(model, predictor, parts.test)["passed"]
    True
    """
    onnx = _require("onnx")
    skl2onnx = _require("skl2onnx")
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    kinds = _inputs(pipeline, X)
    model = pipeline.steps[-1][1]
    classifier = hasattr(model, "classes_")
    types = [(c, DoubleTensorType([None, 1]) if k == "numeric" else StringTensorType([None, 1])) for c, k in kinds.items()]
    try:
        onx = skl2onnx.convert_sklearn(
            pipeline,
            name=name,
            initial_types=types,
            target_opset={**OPSETS, "ai.onnx.ml": 3},
            options={id(model): {"zipmap": False}} if classifier else None,
            custom_conversion_functions={t: conv for t, (conv, _) in _CONVERTERS.items()},
            custom_shape_calculators={t: shape for t, (_, shape) in _CONVERTERS.items()},
        )
    except ConversionError:
        raise
    except Exception as exc:  # skl2onnx raises many types; name the model and keep the cause
        step = f"step {pipeline.steps[-1][0]!r} ({type(model).__name__})"
        message = f"skl2onnx could not convert the pipeline ({type(exc).__name__}: {exc}). {_WHAT_TO_DO}"
        raise ConversionError(message, step=step) from exc
    meta = {
        "mlkit.model": type(model).__name__,
        "mlkit.numeric_columns": json.dumps([c for c, k in kinds.items() if k == "numeric"]),
        "mlkit.categorical_columns": json.dumps([c for c, k in kinds.items() if k == "categorical"]),
        "mlkit.fill_values": json.dumps(_fill_values(pipeline, kinds)),
        "mlkit.none_value": _none_marker(pipeline),
    }
    if classifier:
        meta["mlkit.classes"] = json.dumps(model.classes_.tolist())
        meta["mlkit.classes_dtype"] = str(model.classes_.dtype)
    for opset in onx.opset_import:  # the float64 TreeEnsemble is ai.onnx.ml 5 (see _raw_scores)
        if opset.domain == "ai.onnx.ml":
            opset.version = OPSETS["ai.onnx.ml"]
    onx.doc_string = f"mlkit pipeline ({type(model).__name__}), exported with mlkit.onnx_export.to_onnx"
    onnx.helper.set_model_props(onx, meta)
    onnx.checker.check_model(onx, full_check=True)
    return onx.SerializeToString()


# --- Serving --------------------------------------------------------------------------------


def _numbers(s: pd.Series, col: str) -> np.ndarray:
    """A column as float64, pandas' missing values (None, pd.NA) as NaN."""
    values = s.to_numpy()
    if values.dtype.kind in "fiub":  # plain numpy columns: the fast path for single rows
        return values.astype(np.float64)
    try:
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise DataError(f"Column {col!r} must hold numbers; it holds {s.dtype} values such as {s.iloc[0]!r}.") from None


class OnnxPredictor:
    """Run an exported pipeline with onnxruntime on a pandas frame, as the pipeline would.

    Parameters
    ----------
    model
        ONNX bytes from :func:`to_onnx`, or the path of a ``.onnx`` file.
    intra_op_num_threads
        Threads onnxruntime may use inside one operator. 1 (the default) suits single-row
        serving and keeps timings steady; raise it for large batches.

    Attributes
    ----------
    input_columns, numeric_columns, categorical_columns : list of str
        The columns a frame must hold; numeric ones are sent as float64, categorical as text.
    task : str
        ``"classification"`` when the graph outputs probabilities, else ``"regression"``.
    classes_ : numpy.ndarray or None
        The class labels, as the pipeline's ``classes_`` (classifiers only).
    session : onnxruntime.InferenceSession
        The session that runs the graph.
    """

    def __init__(self, model: bytes | str | Path, *, intra_op_num_threads: int = 1) -> None:
        ort = _require("onnxruntime")
        if isinstance(model, (str, Path)):
            path = Path(model)
            if not path.is_file():
                raise DataError(f"ONNX model file not found: {path}. Export one with mlkit.onnx_export.to_onnx.")
            model = path.read_bytes()
        if not isinstance(model, (bytes, bytearray)):
            raise ParameterError(f"model must be ONNX bytes or a file path, not {type(model).__name__}.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(intra_op_num_threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(bytes(model), sess_options=options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        numeric_inputs = [i.name for i in inputs if i.type == "tensor(double)"]
        text_inputs = [i.name for i in inputs if i.type == "tensor(string)"]
        odd = [f"{i.name} ({i.type})" for i in inputs if i.name not in numeric_inputs + text_inputs]
        if odd:
            raise ParameterError(f"OnnxPredictor feeds float64 and string inputs only; this model also has {', '.join(odd)}.")
        meta = self.session.get_modelmeta().custom_metadata_map
        # ONNX input names are sanitised ("mean radius" -> "mean_radius"); the frame keeps the
        # original column names, recorded in the metadata in input order.
        self.numeric_columns = json.loads(meta.get("mlkit.numeric_columns", json.dumps(numeric_inputs)))
        self.categorical_columns = json.loads(meta.get("mlkit.categorical_columns", json.dumps(text_inputs)))
        if len(self.numeric_columns) != len(numeric_inputs) or len(self.categorical_columns) != len(text_inputs):
            raise ParameterError("The ONNX model's metadata does not match its inputs; re-export it with mlkit.onnx_export.to_onnx.")
        self._inputs = dict(zip(numeric_inputs, self.numeric_columns)) | dict(zip(text_inputs, self.categorical_columns))
        self.input_columns = [self._inputs[i.name] for i in inputs]
        outputs = [o.name for o in self.session.get_outputs()]
        self.task = "classification" if "probabilities" in outputs else "regression"
        self._label = "label" if self.task == "classification" else outputs[0]
        self._fill = json.loads(meta.get("mlkit.fill_values", "{}"))
        self._none = meta.get("mlkit.none_value", "<None>")
        self.classes_ = None
        if self.task == "classification" and "mlkit.classes" in meta:
            self.classes_ = np.asarray(json.loads(meta["mlkit.classes"]), dtype=meta.get("mlkit.classes_dtype") or None)

    def __repr__(self) -> str:
        return f"OnnxPredictor(task={self.task!r}, inputs={len(self.input_columns)})"

    def _text(self, value: Any, fill: str) -> str:
        if isinstance(value, str):
            return value
        if value is None:  # scikit-learn's SimpleImputer keeps None: an unknown category
            return self._none
        if value is pd.NA or value != value:  # NaN, NaT, pd.NA: missing
            return fill
        return str(value)

    def feed(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """The input dict onnxruntime is given for a frame: float64 and text columns of shape (n, 1).

        Raises
        ------
        DataError
            A column the model needs is missing, or a numeric column holds text.
        """
        if not isinstance(X, pd.DataFrame):
            raise ParameterError(f"X must be a pandas DataFrame with columns {self.input_columns}, not {type(X).__name__}.")
        missing = [c for c in self.input_columns if c not in X.columns]
        if missing:
            raise DataError(
                f"Column(s) {', '.join(map(repr, missing))} missing from the frame; "
                f"the ONNX model needs {self.input_columns}."
            )
        feed = {}
        numeric = set(self.numeric_columns)
        for name, col in self._inputs.items():
            if col in numeric:
                feed[name] = _numbers(X[col], col).reshape(-1, 1)
            else:
                fill = self._fill.get(col, "missing")
                feed[name] = np.array([self._text(v, fill) for v in X[col].to_numpy(dtype=object)], dtype=object).reshape(-1, 1)
        return feed

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Class labels (classifier) or predictions (regressor), one per row."""
        out = self.session.run([self._label], self.feed(X))[0].ravel()
        if self.task == "regression":
            return out.astype(np.float64, copy=False)
        return out if self.classes_ is None else out.astype(self.classes_.dtype, copy=False)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape (n rows, n classes), columns in the order of ``classes_``."""
        if self.task != "classification":
            raise MlkitError("This ONNX model is a regressor: it has no probabilities. Use predict.")
        return self.session.run(["probabilities"], self.feed(X))[0]


def parity(
    pipeline: Pipeline, predictor: OnnxPredictor | bytes, X: pd.DataFrame, *, tolerance: float = 1e-5
) -> dict[str, Any]:
    """Compare the pipeline and its ONNX export on the rows of ``X``.

    A value's difference is ``|a - b| / max(1, |a|)`` with ``a`` from scikit-learn: an
    absolute difference for probabilities (at most 1) and for small predictions, a relative
    one for large predictions (a traffic count of 5000 agrees to 5000 * tolerance).

    Returns
    -------
    dict
        ``rows``; ``label_agreement``, the share of rows whose labels are identical (for a
        regressor: whose predictions differ by at most ``tolerance``); ``labels_identical``,
        true when that share is 1; ``max_abs_diff``, the largest ``|a - b|`` between
        probabilities (classifier) or predictions (regressor); ``max_rel_diff``, the largest
        difference as defined above (equal to ``max_abs_diff`` for probabilities);
        ``tolerance``; and ``passed``: labels identical and ``max_rel_diff <= tolerance``.
    """
    if not isinstance(predictor, OnnxPredictor):
        predictor = OnnxPredictor(predictor)
    if tolerance < 0:
        raise ParameterError(f"tolerance must be >= 0, not {tolerance}.")
    if len(X) == 0:
        raise DataError("parity needs at least one row; pass e.g. the test part of the split.")
    classifier = hasattr(pipeline.steps[-1][1], "classes_")
    if classifier != (predictor.task == "classification"):
        raise ParameterError(
            f"The pipeline and the ONNX model solve different tasks (ONNX: {predictor.task}); export this pipeline again."
        )
    if classifier:
        same = np.asarray(pipeline.predict(X)) == predictor.predict(X)
        a, b = pipeline.predict_proba(X), predictor.predict_proba(X)
    else:
        a, b = np.asarray(pipeline.predict(X), dtype=np.float64).ravel(), predictor.predict(X)
    diff = np.abs(a - b)
    rel = diff / np.maximum(1.0, np.abs(a))
    if not classifier:
        same = rel <= tolerance
    max_rel = float(rel.max())
    return {
        "rows": int(len(X)),
        "label_agreement": float(np.mean(same)),
        "labels_identical": bool(np.all(same)),
        "max_abs_diff": float(diff.max()),
        "max_rel_diff": max_rel,
        "tolerance": float(tolerance),
        "passed": bool(np.all(same) and max_rel <= tolerance),
    }
