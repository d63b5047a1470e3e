"""Each use case's default pipeline, so a later notebook gets a trained model in one call.

Notebook 01 builds these pieces by hand, in plain scikit-learn; this module holds the same
recipe so that 02, 03 and later notebooks can say "the pipeline from 01" in one visible call.

Examples
--------
>>> from mlkit import datasets, usecases
>>> uc = usecases.get("healthcare-diagnosis")
>>> df = datasets.load(uc, n=300)
>>> parts = split(df, uc, seed=0)
>>> model = build_pipeline(uc, parts.train, family="linear", seed=0)
>>> model = model.fit(*xy(parts.train, uc))
>>> round(float(model.score(*xy(parts.test, uc))), 1) >= 0.9
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlkit import usecases
from mlkit.errors import ParameterError

__all__ = [
    "FAMILIES",
    "FeatureColumns",
    "Split",
    "feature_columns",
    "build_preprocessor",
    "build_model",
    "build_pipeline",
    "choose_split",
    "split",
    "xy",
    "train",
]

FAMILIES = ("baseline", "linear", "boosting")
"""Model families: a ``Dummy*`` baseline, a linear model and gradient-boosted trees."""


@dataclass
class FeatureColumns:
    """Which columns feed the model, and why the others do not."""

    numeric: list[str]
    categorical: list[str]
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        """Numeric then categorical feature names."""
        return self.numeric + self.categorical


@dataclass
class Split:
    """Train, validation and test rows, with the strategy that made them and why."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    strategy: str
    reason: str

    def sizes(self) -> dict[str, int]:
        """Rows in each part."""
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def feature_columns(df: pd.DataFrame, uc: usecases.UseCase) -> FeatureColumns:
    """Sort a frame's columns into numeric features, categorical features and dropped columns.

    Dropped: the target, identifiers, personal data, datetimes (their order is used for the
    split; useful parts such as the hour are separate columns) and columns with no values.

    Examples
    --------
    >>> from mlkit import datasets
    >>> uc = usecases.get("healthcare-readmission")
    >>> cols = feature_columns(datasets.load(uc, n=200), uc)
    >>> cols.dropped["name"]
    'personal data'
    """
    numeric, categorical, dropped = [], [], {}
    for col in df.columns:
        s = df[col]
        if col == uc.target:
            dropped[col] = "target"
        elif col in uc.sensitive_columns:
            dropped[col] = "personal data"
        elif col in uc.id_columns:
            dropped[col] = "identifier"
        elif col == "drifted":
            dropped[col] = "simulation flag"
        elif pd.api.types.is_datetime64_any_dtype(s):
            dropped[col] = "datetime"
        elif s.isna().all():
            dropped[col] = "no values"
        elif pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            numeric.append(col)
        else:
            categorical.append(col)
    return FeatureColumns(numeric, categorical, dropped)


def build_preprocessor(numeric: list[str], categorical: list[str]) -> ColumnTransformer:
    """Impute and scale numeric columns; impute and one-hot encode categorical ones.

    One-hot keeps at most 20 levels per column (rarer ones share an ``infrequent`` column)
    and ignores levels never seen in training, so a new category at serving time is no error.
    """
    numeric_steps = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    categorical_steps = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"),
        OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=20, sparse_output=False),
    )
    return ColumnTransformer(
        [("numeric", numeric_steps, numeric), ("categorical", categorical_steps, categorical)],
        verbose_feature_names_out=False,
    )


def build_model(task: str, family: str, *, seed: int = 0):
    """Return an unfitted estimator of a model family for a task.

    Examples
    --------
    >>> build_model("regression", "linear")
    Ridge()
    """
    if family not in FAMILIES:
        raise ParameterError(f"Unknown model family {family!r}; choose one of {', '.join(FAMILIES)}.")
    classification = task == "classification"
    if family == "baseline":
        return DummyClassifier(strategy="prior") if classification else DummyRegressor(strategy="mean")
    if family == "linear":
        return LogisticRegression(max_iter=2000) if classification else Ridge()
    cls = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
    return cls(max_iter=200, learning_rate=0.1, random_state=seed)


def build_pipeline(uc: usecases.UseCase, df: pd.DataFrame, *, family: str = "boosting", seed: int = 0) -> Pipeline:
    """The use case's default pipeline: preprocessing then a model of ``family`` (unfitted)."""
    cols = feature_columns(df, uc)
    return Pipeline(
        [("preprocess", build_preprocessor(cols.numeric, cols.categorical)), ("model", build_model(uc.task, family, seed=seed))]
    )


def choose_split(uc: usecases.UseCase) -> tuple[str, str]:
    """Pick the split the data calls for, and say why.

    Returns
    -------
    strategy, reason
        ``"time-ordered"`` for series, ``"stratified"`` for classification, else ``"random"``.
    """
    if uc.series and uc.time_column:
        return "time-ordered", (
            f"rows are points of a series ordered by {uc.time_column!r}: neighbours share information, "
            "so we train on the past and test on the future"
        )
    if uc.task == "classification":
        return "stratified", "classification: every part keeps the same share of each class"
    return "random", "independent rows and a numeric target: a shuffled split is fair"


def split(
    df: pd.DataFrame,
    uc: usecases.UseCase,
    *,
    seed: int = 0,
    strategy: str | None = None,
    validation_size: float = 0.2,
    test_size: float = 0.2,
) -> Split:
    """Split rows into train (60%), validation (20%) and test (20%) by the chosen strategy."""
    chosen, reason = choose_split(uc)
    strategy = strategy or chosen
    if strategy != chosen:
        reason = f"{strategy} split requested explicitly"
    if strategy == "time-ordered":
        if not uc.time_column:
            raise ParameterError("A time-ordered split needs a time_column.")
        ordered = df.sort_values(uc.time_column, kind="stable").reset_index(drop=True)
        n = len(ordered)
        a, b = int(n * (1 - validation_size - test_size)), int(n * (1 - test_size))
        return Split(ordered.iloc[:a], ordered.iloc[a:b], ordered.iloc[b:], strategy, reason)
    if strategy not in ("stratified", "random"):
        raise ParameterError(f"Unknown split strategy {strategy!r}; use time-ordered, stratified or random.")
    stratify = df[uc.target] if strategy == "stratified" else None
    rest, test = train_test_split(df, test_size=test_size, random_state=seed, stratify=stratify)
    stratify = rest[uc.target] if strategy == "stratified" else None
    share = validation_size / (1 - test_size)
    train_, val = train_test_split(rest, test_size=share, random_state=seed, stratify=stratify)
    return Split(train_, val, test, strategy, reason)


def xy(df: pd.DataFrame, uc: usecases.UseCase) -> tuple[pd.DataFrame, pd.Series]:
    """Features and target of a frame (the target column removed from the features)."""
    return df.drop(columns=[uc.target]), df[uc.target]


def train(uc: usecases.UseCase, df: pd.DataFrame, *, family: str = "boosting", seed: int = 0) -> tuple[Pipeline, Split]:
    """Split ``df`` and fit the default pipeline on train + validation; returns it and the split.

    This is the model notebook 01 builds, in one call, for notebooks that need a trained model.
    """
    parts = split(df, uc, seed=seed)
    fit_rows = pd.concat([parts.train, parts.validation])
    model = build_pipeline(uc, fit_rows, family=family, seed=seed)
    model.fit(*xy(fit_rows, uc))
    return model, parts

