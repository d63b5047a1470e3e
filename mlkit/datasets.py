"""Deterministic data for every use case: loading, time-ordered streams with injected drift.

Each built-in use case has one private generator. A generator draws every value from a
numpy ``default_rng`` seeded by ``seed``, so the same seed gives the same rows, and it
documents which features drive the target and how. The mechanism of each generator is
parameterised by a *regime* (a small dict of numbers): the baseline regime makes the data
of :func:`load`; a drift scenario is another regime, used by :func:`stream` for the rows at
and after ``drift_start``. The rows before the drift are exactly the rows of the
undrifted stream, and the drifted rows continue its clock.

The drift scenarios mean the same thing in every use case:

* ``covariate`` -- the features' distribution changes; the mechanism that turns features
  into the target is the same.
* ``label`` -- the target's level changes. For classifiers the positive rate rises: rows
  are drawn class by class from the baseline mechanism (so the features of a positive
  still look like those of a positive); for regression the level of the target rises.
* ``concept`` -- the relationship between the features and the target changes.

``healthcare-diagnosis`` is real data (scikit-learn's bundled Wisconsin diagnostic
breast-cancer set), so its drift is made by resampling real rows with weights.

Examples
--------
>>> df = load("finance-fraud", n=2000)
>>> df.shape
(2000, 10)
>>> s = stream("retail-demand", n=480, drift="label", drift_start=0.5)
>>> int(s["drifted"].sum())
240
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from mlkit import paths, usecases
from mlkit.errors import ParameterError

__all__ = ["load", "stream", "stream_frame", "sha256", "write_committed", "verify_manifest", "MIN_ROWS"]

MIN_ROWS = 50
"""The fewest rows :func:`load` and :func:`stream` make (fewer cannot be split and scored)."""

_START = np.datetime64("2024-01-01T00:00:00", "s")
_DAY = 86_400
_HOUR = 3_600
_DIAGNOSIS_ROWS = 569
_MANIFEST = "MANIFEST"

_Regime = dict[str, Any]


# --------------------------------------------------------------------------- helpers


def _seconds(t: np.datetime64 | pd.Timestamp) -> int:
    """Return a time as integer seconds since 1970-01-01."""
    return int(np.datetime64(t, "s").astype(np.int64))


def _to_datetime(seconds: np.ndarray) -> np.ndarray:
    """Turn integer seconds since 1970 into a ``datetime64[us]`` array (pandas' default unit)."""
    return np.asarray(seconds, dtype=np.int64).astype("datetime64[s]").astype("datetime64[us]")


def _event_times(rng: np.random.Generator, n: int, start: int, end: int) -> np.ndarray:
    """Return ``n`` increasing times (seconds) spread over ``[start, end)``: a jittered grid."""
    pos = (np.arange(n) + rng.uniform(size=n)) / n
    return start + np.floor(pos * (end - start)).astype(np.int64)


def _logistic(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _choice(rng: np.random.Generator, labels: list[str], p: list[float] | np.ndarray, n: int) -> np.ndarray:
    """Draw ``n`` labels with probabilities ``p`` (normalised), as a numpy string array."""
    p = np.asarray(p, dtype=float)
    return np.asarray(labels)[rng.choice(len(labels), size=n, p=p / p.sum())]


def _choice_rows(rng: np.random.Generator, labels: list[str], probs: np.ndarray) -> np.ndarray:
    """Draw one label per row, each row with its own probability vector (rows of ``probs``)."""
    probs = probs / probs.sum(axis=1, keepdims=True)
    cum = probs.cumsum(axis=1)
    idx = (rng.uniform(size=(len(probs), 1)) > cum).sum(axis=1)
    return np.asarray(labels)[np.minimum(idx, len(labels) - 1)]


def _mask(rng: np.random.Generator, values: np.ndarray, rate: float | np.ndarray) -> np.ndarray:
    """Return ``values`` as floats with a share ``rate`` (scalar or per row) set to NaN."""
    out = np.asarray(values, dtype=float).copy()
    out[rng.uniform(size=len(out)) < rate] = np.nan
    return out


def _ids(prefix: str, offset: int, n: int, width: int, *, scramble: int = 1) -> list[str]:
    """Return ``n`` unique identifiers, numbered from ``offset``.

    With ``scramble`` (an odd multiplier not divisible by 5) the numbers are permuted so that
    they do not reveal the order of the rows, yet stay unique below ``10**width``.
    """
    k = np.arange(offset, offset + n, dtype=np.int64) + 1
    if scramble != 1:
        k = (k * scramble + 7_919) % (10**width)
    return [f"{prefix}{v:0{width}d}" for v in k.tolist()]


def _day_of_year(day_numbers: np.ndarray) -> np.ndarray:
    """Return the day of the year (0 = 1 January) of days counted since 1970-01-01."""
    jan1 = day_numbers.astype("datetime64[D]").astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)
    return day_numbers - jan1


def _easter(year: int) -> np.datetime64:
    """Return Easter Sunday of ``year`` (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return np.datetime64(f"{year:04d}-{month:02d}-{day + 1:02d}", "D")


def _monday(year: int, month: int, *, last: bool) -> np.datetime64:
    """Return the first (or last) Monday of a month."""
    first = np.datetime64(f"{year:04d}-{month:02d}-01", "D")
    if last:
        nxt = (first.astype("datetime64[M]") + 1).astype("datetime64[D]")
        end = nxt - 1
        return end - (end.astype(np.int64) - 4) % 7  # 1970-01-05 was a Monday
    return first + (4 - first.astype(np.int64)) % 7


@lru_cache(maxsize=None)
def _holidays(year: int) -> frozenset[int]:
    """Public holidays of one year (UK-style bank holidays, no substitute days), as day numbers."""
    easter = _easter(year)
    days = [
        np.datetime64(f"{year:04d}-01-01", "D"),
        easter - 2,
        easter + 1,
        _monday(year, 5, last=False),
        _monday(year, 5, last=True),
        _monday(year, 8, last=True),
        np.datetime64(f"{year:04d}-12-25", "D"),
        np.datetime64(f"{year:04d}-12-26", "D"),
    ]
    return frozenset(int(d.astype(np.int64)) for d in days)


def _is_holiday(day_numbers: np.ndarray) -> np.ndarray:
    """Return 1 where a day (days since 1970) is a public holiday, else 0."""
    years = day_numbers.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    hol = set().union(*(_holidays(int(y)) for y in np.unique(years)))
    return np.isin(day_numbers, np.fromiter(hol, dtype=np.int64)).astype(np.int64)


def _with_prior(
    make: Callable[[int], pd.DataFrame],
    rng: np.random.Generator,
    n: int,
    target: str,
    positive_rate: float | None,
    base_rate: float,
) -> pd.DataFrame:
    """Make ``n`` rows; with ``positive_rate``, draw them class by class from a larger baseline pool.

    This is label shift done properly: the features of each class keep their distribution
    (P(features | target) is the baseline's) while the share of positives becomes
    ``positive_rate`` (on average; the count is binomial).
    """
    if positive_rate is None:
        return make(n)
    n_pos = int(rng.binomial(n, positive_rate))
    factor = max(positive_rate / base_rate, (1 - positive_rate) / (1 - base_rate))
    m = int(math.ceil(n * factor * 1.5)) + 200
    while True:
        pool = make(m)
        y = pool[target].to_numpy()
        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        if len(pos) >= n_pos and len(neg) >= n - n_pos:
            break
        m *= 2
    keep = np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, n - n_pos, replace=False)])
    return pool.iloc[np.sort(keep)].reset_index(drop=True)


# --------------------------------------------------------------------------- healthcare-diagnosis


_BREAST_CANCER_FEATURES = [
    f"{stat}{name}"
    for stat in ("mean ", "", "worst ")
    for name in ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                 "concave points", "symmetry", "fractal dimension")
]
_BREAST_CANCER_FEATURES[10:20] = [f"{name} error" for name in _BREAST_CANCER_FEATURES[10:20]]


def _read_bundled_breast_cancer() -> pd.DataFrame:
    """Read scikit-learn's bundled ``breast_cancer.csv`` without importing scikit-learn (which is slow).

    Falls back to :func:`sklearn.datasets.load_breast_cancer` if the file is not where it
    has always been. Returns the 30 features (scikit-learn's names) and ``target``
    (0 = malignant, as in scikit-learn).
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "breast_cancer.csv"
        try:
            raw = pd.read_csv(path, skiprows=1, header=None)
            if raw.shape == (_DIAGNOSIS_ROWS, 31):
                raw.columns = [*_BREAST_CANCER_FEATURES, "target"]
                return raw.astype({"target": np.int64})
        except (OSError, ValueError):
            pass
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


@lru_cache(maxsize=1)
def _breast_cancer() -> pd.DataFrame:
    """The 569 real rows with ``patient_id`` (by original row) and the ``malignant`` target."""
    raw = _read_bundled_breast_cancer()
    df = raw.drop(columns="target")
    df.columns = [c.replace(" ", "_") for c in df.columns]
    df.insert(0, "patient_id", _ids("BC-", 0, len(df), 4))
    df["malignant"] = (raw["target"].to_numpy() == 0).astype(np.int64)  # scikit-learn: 0 = malignant
    return df


def _diagnosis(seed: int, n: int) -> pd.DataFrame:
    """Real Wisconsin diagnostic breast-cancer data: a stratified subsample, shuffled by seed.

    Source: scikit-learn's bundled copy of the UCI Breast Cancer Wisconsin (Diagnostic)
    data (Street, Wolberg & Mangasarian 1993), 569 fine-needle-aspirate images described
    by 30 measurements of cell nuclei (mean, standard error and worst value of radius,
    texture, perimeter, area, smoothness, compactness, concavity, concave points, symmetry
    and fractal dimension). Target ``malignant`` = 1 for malignant (212 of 569, 37%).

    With ``n`` < 569 each class keeps its share (stratified), then rows are shuffled.
    ``patient_id`` names the original row (``BC-0001`` is the first row of the source), so
    the same record has the same id whatever the seed.
    """
    full = _breast_cancer()
    rng = np.random.default_rng([seed, 0])
    y = full["malignant"].to_numpy()
    if n < len(full):
        n_pos = int(round(n * y.mean()))
        pos = rng.choice(np.flatnonzero(y == 1), n_pos, replace=False)
        neg = rng.choice(np.flatnonzero(y == 0), n - n_pos, replace=False)
        rows = np.concatenate([pos, neg])
    else:
        rows = np.arange(len(full))
    return full.iloc[rng.permutation(rows)].reset_index(drop=True)


_DIAGNOSIS_DRIFT: dict[str, _Regime] = {
    # weights exp(beta * z) on the standardised mean_radius: larger masses are over-sampled
    "covariate": {"radius_weight": 0.5},
    # malignant rows over-sampled until they are twice the baseline share
    "label": {"positive_share": 2 * 212 / 569},
    # benign masses with mean_texture >= 17 (about half of them) are labelled malignant
    "concept": {"texture_threshold": 17.0},
}


def _diagnosis_after(
    rng: np.random.Generator, pool: pd.DataFrame, n: int, regime: _Regime
) -> pd.DataFrame:
    """Draw ``n`` rows from ``pool`` (the records not shown yet) under a drift regime.

    * covariate: weight ``exp(0.5 * z)``, with ``z`` the standardised ``mean_radius`` of the
      whole data; each drawn row keeps its real label, so P(malignant | measurements) is
      unchanged -- the malignant share still rises, because larger masses are more often
      malignant.
    * label: malignant rows weighted so that they make up twice the baseline share (75%);
      within each class rows are drawn uniformly, so P(measurements | class) is unchanged.
    * concept: the records in a random order, each at most once (no weights call for
      replacement, and a record repeated in the stream would be trained on and tested on
      at once), then every benign row with ``mean_texture`` >= 17 is labelled malignant:
      the same measurements now mean something else.

    Covariate and label drift draw with replacement, as their weights require.
    """
    full = _breast_cancer()
    y = pool["malignant"].to_numpy()
    weights = None  # no weights: every record at most once
    if "radius_weight" in regime:
        r = full["mean_radius"]
        weights = np.exp(regime["radius_weight"] * (pool["mean_radius"].to_numpy() - r.mean()) / r.std())
    if "positive_share" in regime:
        share = regime["positive_share"]
        weights = np.where(y == 1, share / max(y.sum(), 1), (1 - share) / max((1 - y).sum(), 1))
    if weights is None and n <= len(pool):
        picks = rng.permutation(len(pool))[:n]
    else:
        weights = np.ones(len(pool)) if weights is None else weights
        picks = rng.choice(len(pool), size=n, replace=True, p=weights / weights.sum())
    out = pool.iloc[picks].reset_index(drop=True)
    if "texture_threshold" in regime:
        flip = (out["malignant"] == 0) & (out["mean_texture"] >= regime["texture_threshold"])
        out.loc[flip, "malignant"] = 1
    return out


# --------------------------------------------------------------------------- healthcare-readmission

_FIRST_F = ["Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Sophia", "Lily", "Emily", "Freya",
            "Margaret", "Susan", "Patricia", "Aisha", "Fatima", "Priya", "Zara", "Helen", "Joan", "Ruth"]
_FIRST_M = ["Oliver", "George", "Noah", "Arthur", "Leo", "Harry", "Jack", "Muhammad", "Thomas", "James",
            "David", "John", "Peter", "Michael", "Ali", "Arjun", "Kwame", "Daniel", "Robert", "William"]
_LAST = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Robinson",
         "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall", "Khan", "Wood",
         "Clarke", "Jackson", "Hughes", "Edwards", "Hussain", "Lewis", "Turner", "Hill", "Okafor", "Nowak"]
_POSTCODE_AREAS = ["LS", "BD", "HX", "WF", "HD", "HG", "YO", "S"]
_POSTCODE_LETTERS = list("ABDEFGHJLNPQRSTUWXYZ")

_READMISSION_RATE_PER_DAY = 5000 / 731  # the default 5000 rows span 2024-2025
_READMISSION_GROUPS = ["circulatory", "respiratory", "diabetes", "digestive", "injury", "musculoskeletal", "other"]
_READMISSION_DISCHARGE = ["home", "home_health", "skilled_nursing", "rehab"]
_READMISSION: dict[str, _Regime] = {
    "base": {
        "age_mean": 62.0,
        "prior_rate": 0.8,
        "intercept": -3.95,
        "home_effect": 0.0,
        "positive_rate": None,
    },
    "covariate": {"age_mean": 72.0, "prior_rate": 1.4},
    "label": {"positive_rate": 0.22},
    "concept": {"home_effect": 1.0, "intercept": -4.55},
}


def _readmission_rows(rng: np.random.Generator, n: int, start: int, end: int, r: _Regime) -> pd.DataFrame:
    times = _event_times(rng, n, start, end)
    day = times // _DAY
    age = np.clip(np.round(rng.normal(r["age_mean"], 16.0, n)), 18, 99).astype(np.int64)
    sex = _choice(rng, ["F", "M"], [0.52, 0.48], n)
    adm = _choice(rng, ["emergency", "urgent", "elective"], [0.55, 0.20, 0.25], n)
    group = _choice(rng, _READMISSION_GROUPS, [0.22, 0.16, 0.12, 0.12, 0.12, 0.10, 0.16], n)
    emergency, urgent = adm == "emergency", adm == "urgent"
    diabetes = group == "diabetes"
    chronic = np.isin(group, ["circulatory", "respiratory", "diabetes"])

    los_mean = np.exp(
        1.05 + 0.012 * (age - 60) + 0.25 * emergency - 0.2 * (adm == "elective")
        + 0.2 * np.isin(group, ["respiratory", "musculoskeletal"]) + 0.1 * (group == "circulatory")
    )
    los = 1 + rng.poisson(rng.gamma(2.0, los_mean / 2.0))
    prior = rng.poisson(r["prior_rate"] * np.exp(0.02 * (age - 60)) * np.where(chronic, 1.5, 0.8))
    meds = 1 + rng.poisson(np.clip(5 + 0.08 * (age - 40), 2, None) + 4 * diabetes + 2 * (group == "circulatory"))
    labs = rng.poisson(22 + 2.5 * np.minimum(los, 20) + 6 * emergency)
    hba1c_true = np.where(
        diabetes, np.clip(rng.normal(8.1, 1.6, n), 5.5, 15.0), np.clip(rng.normal(5.5, 0.45, n), 4.0, 7.5)
    )
    hba1c = _mask(rng, np.round(hba1c_true, 1), np.where(diabetes, 0.05, 0.45))

    z_home = np.zeros(n)
    z_hh = -2.0 + 0.05 * (age - 60) + 0.08 * np.minimum(los, 20)
    z_snf = -3.6 + 0.08 * (age - 60) + 0.12 * np.minimum(los, 20) + 0.6 * (group == "injury")
    z_rehab = -3.0 + 1.0 * np.isin(group, ["injury", "musculoskeletal"]) + 0.05 * np.minimum(los, 20)
    disch = _choice_rows(rng, _READMISSION_DISCHARGE, np.exp(np.column_stack([z_home, z_hh, z_snf, z_rehab])))
    effect = {"home": r["home_effect"], "home_health": 0.45, "skilled_nursing": 1.1, "rehab": 0.6}

    logit = (
        r["intercept"] + 0.45 * np.minimum(prior, 8) + 0.08 * np.minimum(los, 20) + 0.025 * (age - 65)
        + 0.7 * emergency + 0.3 * urgent + np.vectorize(effect.get, otypes=[float])(disch)
        + 1.1 * (diabetes & (hba1c_true > 8.0)) + 0.3 * np.isin(group, ["circulatory", "respiratory"])
        + 0.03 * (meds - 10)
    )
    y = (rng.uniform(size=n) < _logistic(logit)).astype(np.int64)
    return pd.DataFrame(
        {
            "_day": day, "age": age, "sex": sex, "admission_type": adm, "diagnosis_group": group,
            "length_of_stay_days": los.astype(np.int64), "num_prior_admissions": prior.astype(np.int64),
            "num_medications": meds.astype(np.int64), "num_lab_procedures": labs.astype(np.int64),
            "hba1c": hba1c, "discharge_to": disch, "readmitted_30d": y,
        }
    )


def _readmission(rng: np.random.Generator, n: int, *, start: int, offset: int, seed: int, regime: _Regime) -> pd.DataFrame:
    """Synthetic 30-day readmissions: one row per discharge, with personal data.

    Features are drawn per admission: ``age`` ~ Normal(62, 16) clipped to 18-99; emergency
    55% / urgent 20% / elective 25%; ``length_of_stay_days`` = 1 + Poisson-Gamma with a mean
    rising with age and for emergencies; ``num_prior_admissions`` ~ Poisson(0.8 x e^(0.02
    (age-60)), x1.5 for chronic groups); ``hba1c`` (%, NGSP) is high for diabetes (mean 8.1)
    and normal otherwise, and is missing when not measured (5% of diabetes admissions, 45%
    of the others, about 40% overall); ``discharge_to`` depends on age, stay and group.

    The target is Bernoulli(logistic(-3.95 + ...)) with log-odds rising by 0.45 per prior
    admission (up to 8), 0.08 per day of stay (up to 20), 0.025 per year of age over 65,
    +0.7 for emergency (+0.3 urgent), +0.45 / +1.1 / +0.6 for home health / skilled nursing
    / rehab compared with home, +1.1 for diabetes with HbA1c above 8% (the true value,
    measured or not), +0.3 for circulatory and respiratory, +0.03 per medication above 10.
    About 12% are readmitted.

    Personal data (``name`` by ``sex``, ``date_of_birth`` consistent with ``age`` at
    admission, a UK-style ``postcode``) are random and carry no signal.

    Drift regimes: covariate -- age mean 62 -> 72 and the prior-admission rate 0.8 -> 1.4
    (same mechanism); label -- rows drawn class by class from the baseline so that 22% are
    readmitted (P(features | readmitted) unchanged); concept -- discharge home loses its
    protection (its log-odds effect 0 -> +1.0, close to skilled nursing) with the intercept
    lowered to -4.55 so the overall rate stays about 12%.
    """
    end = start + int(round(n / _READMISSION_RATE_PER_DAY * _DAY))
    df = _with_prior(
        lambda m: _readmission_rows(rng, m, start, end, regime), rng, n, "readmitted_30d",
        regime["positive_rate"], 0.12,
    )
    df = df.sort_values("_day", kind="stable").reset_index(drop=True)
    age, sex = df["age"].to_numpy(), df["sex"].to_numpy()
    admission = pd.DatetimeIndex(_to_datetime(df.pop("_day").to_numpy() * _DAY))
    dob = _date_of_birth(rng, admission, age)
    first = np.where(sex == "F", np.asarray(_FIRST_F)[rng.integers(0, 20, len(df))],
                     np.asarray(_FIRST_M)[rng.integers(0, 20, len(df))])
    last = np.asarray(_LAST)[rng.integers(0, len(_LAST), len(df))]
    area = np.asarray(_POSTCODE_AREAS)[rng.integers(0, len(_POSTCODE_AREAS), len(df))]
    district, sector = rng.integers(1, 30, len(df)), rng.integers(0, 10, len(df))
    unit = rng.integers(0, len(_POSTCODE_LETTERS), (len(df), 2))
    letters = np.asarray(_POSTCODE_LETTERS)
    postcode = [f"{a}{d} {s}{letters[u[0]]}{letters[u[1]]}" for a, d, s, u in zip(area, district, sector, unit)]
    out = pd.DataFrame(
        {
            "patient_id": _ids("PT-", offset, len(df), 6, scramble=387_413),
            "name": [f"{a} {b}" for a, b in zip(first, last)],
            "date_of_birth": dob.to_numpy(),
            "postcode": postcode,
            "admission_date": admission.to_numpy(),
            "age": _age_at(dob, admission),
        }
    )
    return pd.concat([out, df.drop(columns="age")], axis=1)


def _date_of_birth(rng: np.random.Generator, at: pd.DatetimeIndex, age: np.ndarray) -> pd.DatetimeIndex:
    """Draw birth dates so that a person is exactly ``age`` whole years old on ``at``."""
    year = at.year.to_numpy() - age
    month, day = at.month.to_numpy(), at.day.to_numpy()
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    day = np.where((month == 2) & (day == 29) & ~leap, 28, day)
    birthday = pd.to_datetime(pd.DataFrame({"year": year, "month": month, "day": day})).to_numpy()
    # up to 364 days before the last birthday: still `age` on `at`, not yet `age + 1`
    return pd.DatetimeIndex(birthday - rng.integers(0, 365, len(at)).astype("timedelta64[D]")).as_unit("us")


def _age_at(born: pd.DatetimeIndex, at: pd.DatetimeIndex) -> np.ndarray:
    """Whole years between two dates (a person's age on a date)."""
    b, a = born, at
    had_birthday = (a.month > b.month) | ((a.month == b.month) & (a.day >= b.day))
    return (a.year - b.year - (~had_birthday).astype(np.int64)).to_numpy().astype(np.int64)


# --------------------------------------------------------------------------- finance-fraud

_FRAUD_RATE_PER_DAY = 20000 / 182  # the default 20000 rows span January to June 2024
_FRAUD_CUSTOMERS = 2000
_FRAUD_CATEGORIES = ["grocery", "restaurant", "fuel", "clothing", "electronics", "travel",
                     "entertainment", "health", "digital_services"]
_FRAUD_CAT_IN_PERSON = [0.28, 0.18, 0.13, 0.10, 0.04, 0.03, 0.10, 0.10, 0.04]
_FRAUD_CAT_ONLINE = [0.08, 0.06, 0.0, 0.18, 0.14, 0.14, 0.08, 0.04, 0.28]
_FRAUD_CAT_SCALE = [1.0, 0.8, 1.2, 1.6, 4.0, 6.0, 0.9, 1.1, 0.5]
_FRAUD_HOUR_WEIGHTS = [0.6, 0.4, 0.3, 0.25, 0.3, 0.6, 1.5, 3.0, 4.5, 5.0, 5.5, 6.0,
                       6.5, 6.0, 5.5, 5.5, 6.0, 6.5, 6.5, 6.0, 5.0, 3.5, 2.0, 1.0]
_FRAUD: dict[str, _Regime] = {
    "base": {
        "channel_p": [0.35, 0.10, 0.30, 0.25],  # chip, swipe, contactless, online
        "amount_scale": 1.0,
        "intercept": -18.12,
        "coef": {"log_amount": 2.4, "night": 4.0, "online": 2.6, "log_distance": 1.3,
                 "new_account": 4.5, "risky_category": 2.4, "small_contactless_day": 0.0,
                 "contactless_voucher": 0.0},
        "positive_rate": None,
    },
    "covariate": {"channel_p": [0.25, 0.05, 0.25, 0.45], "amount_scale": 1.4},
    "label": {"positive_rate": 0.03},
    # stolen contactless cards tapped for small daytime payments, above all vouchers and top-ups
    "concept": {
        "intercept": -9.7,
        "coef": {"log_amount": -1.0, "night": -2.0, "online": -2.0, "log_distance": 0.5,
                 "new_account": 0.0, "risky_category": 0.0, "small_contactless_day": 3.0,
                 "contactless_voucher": 8.0},
    },
}


@lru_cache(maxsize=8)
def _fraud_customers(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed customer base of one seed: account opening day, activity, spend and travel scales."""
    rng = np.random.default_rng([seed, 2])
    k = _FRAUD_CUSTOMERS
    old = rng.uniform(_seconds(np.datetime64("2012-01-01")), _seconds(np.datetime64("2023-11-01")), k)
    new = rng.uniform(_seconds(np.datetime64("2023-11-01")), _seconds(np.datetime64("2026-01-01")), k)
    opened = (np.where(rng.uniform(size=k) < 0.82, old, new) // _DAY).astype(np.int64)
    activity = rng.gamma(2.0, 1.0, k)
    spend = np.exp(rng.normal(np.log(35.0), 0.5, k))
    roam = np.exp(rng.normal(np.log(6.0), 0.6, k))
    return opened, activity, spend, roam


def _diurnal_times(rng: np.random.Generator, hours: np.ndarray, start: int, end: int) -> np.ndarray:
    """Place rows with given hours of the day at random days inside ``[start, end)`` (seconds)."""
    n = len(hours)
    width = max(end - start, _DAY)
    u = start + np.floor(rng.uniform(size=n) * width).astype(np.int64)
    t = (u // _DAY) * _DAY + hours * _HOUR + rng.integers(0, _HOUR, n)
    t = np.where(t < start, t + _DAY, t)
    return np.where(t >= start + width, t - _DAY, t)


def _fraud_rows(rng: np.random.Generator, n: int, start: int, end: int, seed: int, r: _Regime) -> pd.DataFrame:
    opened, activity, spend, roam = _fraud_customers(seed)
    hours = rng.choice(24, size=n, p=np.asarray(_FRAUD_HOUR_WEIGHTS) / sum(_FRAUD_HOUR_WEIGHTS))
    times = _diurnal_times(rng, hours, start, end)
    day = times // _DAY
    # a customer can only pay after opening the account: redraw until every draw is valid
    p_cust = activity / activity.sum()
    cust = rng.choice(_FRAUD_CUSTOMERS, size=n, p=p_cust)
    for _ in range(50):
        bad = opened[cust] > day
        if not bad.any():
            break
        cust[bad] = rng.choice(_FRAUD_CUSTOMERS, size=int(bad.sum()), p=p_cust)
    cust = np.where(opened[cust] > day, np.argmin(opened), cust)
    account_age = np.maximum(day - opened[cust], 0)

    channel = _choice(rng, ["chip", "swipe", "contactless", "online"], r["channel_p"], n)
    online = channel == "online"
    cat_p = np.where(online[:, None], np.asarray(_FRAUD_CAT_ONLINE), np.asarray(_FRAUD_CAT_IN_PERSON))
    cat_idx = (rng.uniform(size=(n, 1)) > (cat_p / cat_p.sum(1, keepdims=True)).cumsum(1)).sum(1)
    cat_idx = np.minimum(cat_idx, len(_FRAUD_CATEGORIES) - 1)
    category = np.asarray(_FRAUD_CATEGORIES)[cat_idx]
    amount = spend[cust] * np.asarray(_FRAUD_CAT_SCALE)[cat_idx] * r["amount_scale"] * np.exp(rng.normal(0, 0.8, n))
    amount = np.maximum(np.round(amount, 2), 0.5)
    distance = roam[cust] * np.exp(rng.normal(0, 1.1, n)) * np.where(category == "travel", 25.0, 1.0)
    distance = np.round(distance, 1)

    c = r["coef"]
    night = (hours <= 5).astype(float)
    logit = (
        r["intercept"]
        + c["log_amount"] * np.log(amount / 40.0)
        + c["night"] * night
        + c["online"] * online
        + c["log_distance"] * np.log1p(distance)
        + c["new_account"] * (account_age < 30)
        + c["risky_category"] * np.isin(category, ["electronics", "travel"])
        + c["small_contactless_day"] * ((channel == "contactless") & (amount < 30) & (hours >= 8) & (hours <= 19))
        + c["contactless_voucher"] * ((channel == "contactless") & (category == "digital_services"))
    )
    y = (rng.uniform(size=n) < _logistic(logit)).astype(np.int64)
    return pd.DataFrame(
        {
            "timestamp": times, "customer_id": [f"CUST-{k + 1:05d}" for k in cust.tolist()],
            "amount": amount, "merchant_category": category, "hour": hours.astype(np.int64),
            "channel": channel, "distance_from_home_km": _mask(rng, distance, 0.05),
            "account_age_days": account_age.astype(np.int64), "is_fraud": y,
        }
    )


def _fraud(rng: np.random.Generator, n: int, *, start: int, offset: int, seed: int, regime: _Regime) -> pd.DataFrame:
    """Synthetic card transactions, about 1% fraud.

    A fixed base of 2000 customers (by seed; 18% open their account between November 2023
    and 2025, and only pay after opening it) each with an activity level, a typical spend
    and a typical distance from home. Per transaction: the hour of day follows a daytime
    profile (quiet 0-5 h) and matches ``timestamp``; ``channel`` is chip 35% / swipe 10% /
    contactless 30% / online 25%; the ``merchant_category`` depends on the channel (no fuel
    online); ``amount`` = customer spend x category scale (electronics x4, travel x6) x
    LogNormal(0, 0.8); ``distance_from_home_km`` = customer scale x LogNormal(0, 1.1), x25
    for travel, missing for 5% (no location); ``account_age_days`` = days since opening.

    Target: Bernoulli(logistic(-18.12 + 2.4 ln(amount/40) + 4.0 night (0-5 h) + 2.6 online
    + 1.3 ln(1 + distance) + 4.5 account younger than 30 days + 2.4 electronics/travel)).

    Drift regimes: covariate -- a shopping season: online 25% -> 45% and amounts x1.4, same
    mechanism; label -- rows drawn class by class from the baseline so that 3% are fraud
    (triple; P(features | fraud) unchanged); concept -- fraudsters adapt: stolen cards are
    tapped contactless (no PIN below the limit) for small daytime payments, above all to buy
    vouchers and top-ups at digital-services merchants, which they resell. The logit becomes
    -9.7 - 1.0 ln(amount/40) - 2.0 night - 2.0 online + 0.5 ln(1 + distance) + 3.0 small
    (< 30 EUR) daytime (8-19 h) contactless + 8.0 contactless at digital services: large
    amounts, night and online now point away from fraud, new accounts and the category no
    longer matter, and the overall rate stays near 1%. A model of the old pattern ranks
    these frauds no better than chance; one retrained on a few thousand new rows finds them.
    """
    end = start + int(round(n / _FRAUD_RATE_PER_DAY * _DAY))
    df = _with_prior(lambda m: _fraud_rows(rng, m, start, end, seed, regime), rng, n, "is_fraud",
                     regime["positive_rate"], 0.01)
    df = df.sort_values("timestamp", kind="stable").reset_index(drop=True)
    df["timestamp"] = _to_datetime(df["timestamp"].to_numpy())
    df.insert(0, "transaction_id", _ids("TX-", offset, len(df), 8))
    return df[["transaction_id", "timestamp", "customer_id", "amount", "merchant_category", "hour",
               "channel", "distance_from_home_km", "account_age_days", "is_fraud"]]


# --------------------------------------------------------------------------- retail-demand

_RETAIL_STORES = {"S01": 1.0, "S02": 0.75, "S03": 1.35, "S04": 0.55}
# product: (base units a day, reference price, price elasticity, temperature sensitivity per degC)
_RETAIL_PRODUCTS = {
    "bread": (55.0, 1.60, 0.8, 0.0),
    "milk": (70.0, 1.25, 0.6, 0.0),
    "bananas": (45.0, 1.10, 1.2, 0.01),
    "coffee": (18.0, 6.50, 1.6, -0.005),
    "ice_cream": (22.0, 4.20, 1.8, 0.07),
    "soup": (16.0, 2.10, 1.4, -0.05),
}
_RETAIL_WEEKLY = [0.92, 0.90, 0.95, 1.0, 1.15, 1.30, 0.78]  # Monday .. Sunday
_RETAIL: dict[str, _Regime] = {
    "base": {"price_level": 1.0, "demand_level": 1.0, "promo_lift": 0.5},
    "covariate": {"price_level": 1.2},
    "label": {"demand_level": 1.3},
    # a competitor matches every promotion: a promoted week sells about what a normal week does
    "concept": {"promo_lift": -0.3},
}


def _retail(rng: np.random.Generator, n: int, *, start: int, offset: int, seed: int, regime: _Regime) -> pd.DataFrame:
    """Synthetic daily unit sales of 6 products in 4 stores (24 rows a day).

    ``units_sold`` ~ Poisson(Gamma(shape 20) x mu) with
    mu = product base x store factor x weekday factor (Sat 1.30 ... Sun 0.78)
    x yearly season (1 + 0.08 cos, peak late December) x (1 + 0.5 promotion)
    x (price / reference price)^(-elasticity) x 1.4 on public holidays
    x e^(sensitivity x (temperature - 12)) (ice cream +7%/degC, soup -5%/degC).
    A ``promotion`` runs for a whole week for one store-product with probability 0.12 and
    cuts the price 20%; ``price`` = reference price x a store-product offset (sd 4%, fixed
    for the seed) x 1.5%/year inflation x daily noise (sd 1.5%), missing for 1% of rows (a
    price-feed gap; sales still follow the real price). ``temperature_c`` is the region's
    daily temperature (about 3 degC in January, 19 degC in July, AR(1) noise), the same
    for every store.
    ``is_holiday`` follows UK-style bank holidays.

    Drift regimes: covariate -- an inflation shock, every price x1.2 (the same elasticity
    turns it into fewer sales); label -- a competitor closes, demand x1.3 everywhere;
    concept -- promotions stop working: a competitor nearby matches every promotion the
    same week, so shoppers no longer come for it; the lift on top of the price cut turns
    from +50% into -30%, which about cancels the cut's own pull (x0.8 for milk to x1.05 for
    ice cream, against x1.7 to x2.2 before): a promoted week sells about what a normal week
    does.
    """
    r = regime
    n_days = math.ceil(n / 24)
    first_day = start // _DAY
    day = first_day + np.arange(n_days)
    doy = _day_of_year(day)
    years = (day - _seconds(_START) // _DAY) / 365.25
    noise = np.zeros(n_days)
    eps = rng.normal(0, 1.6, n_days)
    for i in range(n_days):
        noise[i] = (0.7 * noise[i - 1] if i else 0.0) + eps[i]
    temp = 11.0 + 8.0 * np.sin(2 * np.pi * (doy - 110) / 365.25) + noise
    dow = ((day - 4) % 7).astype(np.int64)  # 1970-01-05 was a Monday
    holiday = _is_holiday(day)
    season = 1 + 0.08 * np.cos(2 * np.pi * (doy - 358) / 365.25)

    stores, products = list(_RETAIL_STORES), list(_RETAIL_PRODUCTS)
    n_series = len(stores) * len(products)
    s_idx = np.repeat(np.arange(len(stores)), len(products))
    p_idx = np.tile(np.arange(len(products)), len(stores))
    week = (day - day[0]) // 7
    promo_weeks = rng.uniform(size=(int(week[-1]) + 1, n_series)) < 0.12
    promo = promo_weeks[week].astype(np.int64)  # days x series

    base, ref_price, elasticity, temp_sens = (np.asarray([v[i] for v in _RETAIL_PRODUCTS.values()]) for i in range(4))
    # each store prices each product a little differently: fixed for the seed, like the stores
    series_price = ref_price[p_idx] * np.exp(np.random.default_rng([seed, 3]).normal(0, 0.04, n_series))
    price = (series_price[None, :] * (1.015 ** years)[:, None] * r["price_level"]
             * np.exp(rng.normal(0, 0.015, (n_days, n_series))) * (1 - 0.2 * promo))
    price = np.round(price, 2)
    mu = (
        base[p_idx][None, :] * np.asarray(list(_RETAIL_STORES.values()))[s_idx][None, :]
        * np.asarray(_RETAIL_WEEKLY)[dow][:, None] * season[:, None]
        * (1 + r["promo_lift"] * promo)
        * (price / ref_price[p_idx][None, :]) ** (-elasticity[p_idx][None, :])
        * np.where(holiday == 1, 1.4, 1.0)[:, None]
        * np.exp(temp_sens[p_idx][None, :] * (temp[:, None] - 12.0))
        * r["demand_level"]
    )
    units = rng.poisson(mu * rng.gamma(20.0, 1 / 20.0, mu.shape))
    date = _to_datetime(np.repeat(day * _DAY, n_series))
    df = pd.DataFrame(
        {
            "date": date,
            "store_id": np.asarray(stores)[np.tile(s_idx, n_days)],
            "product": np.asarray(products)[np.tile(p_idx, n_days)],
            "price": _mask(rng, price.ravel(), 0.01),
            "promotion": promo.ravel(),
            "is_holiday": np.repeat(holiday, n_series),
            "day_of_week": np.repeat(dow, n_series),
            "temperature_c": np.repeat(np.round(temp, 1), n_series),
            "units_sold": units.ravel().astype(np.int64),
        }
    )
    return df.iloc[:n].reset_index(drop=True)


# --------------------------------------------------------------------------- manufacturing-maintenance

_MAINTENANCE_RATE_PER_DAY = 10000 / 366  # the default 10000 rows span 2024
_MAINTENANCE_MACHINES = ["L"] * 18 + ["M"] * 9 + ["H"] * 3
_MAINTENANCE_OSF_LIMIT = {"L": 11_000.0, "M": 12_000.0, "H": 13_000.0}
_MAINTENANCE: dict[str, _Regime] = {
    "base": {"air_mean": 300.0, "tool_life": (200.0, 240.0), "osf_factor": 1.0, "positive_rate": None},
    "covariate": {"air_mean": 305.0},
    "label": {"positive_rate": 0.06},
    "concept": {"tool_life": (160.0, 200.0), "osf_factor": 0.85},
}


def _maintenance_rows(rng: np.random.Generator, n: int, start: int, end: int, r: _Regime) -> pd.DataFrame:
    times = _event_times(rng, n, start, end)
    machine = rng.integers(0, len(_MAINTENANCE_MACHINES), n)
    mtype = np.asarray(_MAINTENANCE_MACHINES)[machine]
    doy = _day_of_year(times // _DAY)
    air = r["air_mean"] + 2.0 * np.sin(2 * np.pi * doy / 365.25 - 1.9) + rng.normal(0, 1.0, n)  # warmest in July
    process = air + 10.0 + rng.normal(0, 0.85, n)
    rpm = 1540.0 + 180.0 * rng.standard_normal(n) + 40.0 * rng.standard_gamma(1.0, n) - 40.0
    torque = np.clip(41.0 - 0.049 * (rpm - 1540.0) + rng.normal(0, 4.0, n), 3.0, None)
    wear = rng.uniform(0, 215.0, n)  # tools are replaced on a schedule, at about 215 min
    lo, hi = r["tool_life"]
    power = torque * rpm * 2 * np.pi / 60
    twf = (wear >= rng.uniform(lo, hi, n)) & (rng.uniform(size=n) < 0.25)
    hdf = ((process - air) < 8.6) & (rpm < 1380)
    pwf = (power < 3500) | (power > 9000)
    osf = wear * torque > r["osf_factor"] * np.vectorize(_MAINTENANCE_OSF_LIMIT.get, otypes=[float])(mtype)
    rnf = rng.uniform(size=n) < 0.001
    y = (twf | hdf | pwf | osf | rnf).astype(np.int64)
    return pd.DataFrame(
        {
            "timestamp": times,
            "machine_id": [f"MC-{k + 1:02d}" for k in machine.tolist()],
            "machine_type": mtype,
            "air_temperature_k": _mask(rng, np.round(air, 1), 0.01),
            "process_temperature_k": _mask(rng, np.round(process, 1), 0.01),
            "rotational_speed_rpm": _mask(rng, np.round(rpm), 0.01),
            "torque_nm": _mask(rng, np.round(torque, 1), 0.01),
            "tool_wear_min": np.floor(wear).astype(np.int64),
            "failure": y,
        }
    )


def _maintenance(rng: np.random.Generator, n: int, *, start: int, offset: int, seed: int, regime: _Regime) -> pd.DataFrame:
    """Synthetic machine readings with AI4I-2020-like failure physics, about 3% failures.

    A fleet of 30 machines (18 of type L, 9 M, 3 H, so readings are 60/30/10%). Each row is
    an independent snapshot of one machine (as in AI4I 2020): ``air_temperature_k`` ~ 300 K
    with a yearly swing of +-2 K and Normal(0, 1) noise; ``process_temperature_k`` = air +
    10 K + Normal(0, 0.85); ``rotational_speed_rpm`` ~ 1540 + Normal(0, 180) (a little right
    skew); ``torque_nm`` = 41 - 0.049 (rpm - 1540) + Normal(0, 4) (correlation with speed
    about -0.9, sd 10 Nm); ``tool_wear_min`` ~ Uniform(0, 215) (tools are replaced on a
    schedule). Each of the four sensor readings is missing for 1% of rows (a dropout); the
    failure uses the true values.

    ``failure`` = 1 when any failure mode fires (shares of readings at baseline):

    * tool wear (TWF, 0.3%): the tool is past its life, drawn from Uniform(200, 240) min,
      and breaks (a quarter of such readings);
    * heat dissipation (HDF, 1.0%): process - air < 8.6 K and speed < 1380 rpm;
    * power (PWF, 0.9%): torque x angular speed below 3500 W or above 9000 W;
    * overstrain (OSF, 0.9%): tool wear x torque above 11000 (L), 12000 (M), 13000 (H)
      min Nm;
    * random (RNF, 0.1%).

    The failure mode is not a column (it would reveal the target).

    Drift regimes: covariate -- a heat wave: air (and so process) temperature +5 K, same
    physics; label -- rows drawn class by class from the baseline so that 6% fail
    (double; P(features | failure) unchanged); concept -- a new tool supplier: tool life
    160-200 min and overstrain limits x0.85, so tools fail at lower wear while the
    replacement schedule stays the same (failures rise to about 9%).
    """
    end = start + int(round(n / _MAINTENANCE_RATE_PER_DAY * _DAY))
    df = _with_prior(lambda m: _maintenance_rows(rng, m, start, end, regime), rng, n, "failure",
                     regime["positive_rate"], 0.03)
    df = df.sort_values("timestamp", kind="stable").reset_index(drop=True)
    df["timestamp"] = _to_datetime(df["timestamp"].to_numpy())
    df.insert(0, "reading_id", _ids("RD-", offset, len(df), 7))
    return df


# --------------------------------------------------------------------------- transport-traffic

_TRAFFIC_WEEKDAY = [420, 260, 220, 300, 820, 2600, 4900, 6100, 5700, 4700, 4400, 4550,
                    4700, 4750, 5000, 5600, 6100, 5900, 4700, 3600, 3050, 2650, 1900, 1050]
_TRAFFIC_WEEKEND = [900, 650, 480, 360, 380, 620, 1100, 1700, 2500, 3300, 3900, 4300,
                    4450, 4450, 4350, 4250, 4150, 4000, 3700, 3200, 2800, 2400, 1800, 1250]
_TRAFFIC_WEATHER = ["clear", "clouds", "rain", "fog"]
_TRAFFIC: dict[str, _Regime] = {
    "base": {
        "weather_p": [0.40, 0.40, 0.15, 0.05],  # long-run shares of clear, clouds, rain, fog
        "temp_offset": 0.0,
        "level": 1.0,
        "morning_peak": 1.0,
        "evening_peak": 1.0,
        "remote_days": 0.0,
    },
    "covariate": {"weather_p": [0.20, 0.35, 0.40, 0.05], "temp_offset": -4.0},
    "label": {"level": 1.25},
    "concept": {"morning_peak": 0.55, "evening_peak": 0.8, "remote_days": 0.25},
}


def _traffic(rng: np.random.Generator, n: int, *, start: int, offset: int, seed: int, regime: _Regime) -> pd.DataFrame:
    """Synthetic hourly vehicle counts on one road.

    Time: one row an hour; ``day_of_week`` 0 = Monday; ``is_holiday`` follows UK-style bank
    holidays. Weather: an hourly Markov chain (an hour keeps the previous hour's weather
    with probability 0.9, otherwise it is redrawn from the long-run shares clear 40% /
    clouds 40% / rain 15% / fog 5%); rain below 0.5 degC is ``snow``. ``rain_mm`` and
    ``snow_mm`` ~ Gamma(0.8, 1.5) and Gamma(0.8, 1.0) in those hours, 0 otherwise.
    ``temperature_c``: yearly cycle (3 degC in January, 19 degC in July) + a daily cycle
    (+-4 degC, warmest at 15 h) + AR(1) noise; missing during sensor outages (runs of
    3-12 hours, about 1% of hours). ``incident`` ~ Bernoulli(1.5%, x2 in rain, snow or fog).

    ``traffic_volume`` ~ Poisson(mu x LogNormal(0, 0.06)) with mu = hourly profile
    (weekdays: peaks of ~6100 vehicles at 7 h and 16 h; weekends and holidays: one broad
    midday hump of ~4450) x season (-7% in August, -10% between Christmas and New Year)
    x weather (rain 0.95 - 0.02 per mm, snow 0.80 - 0.06 per mm, fog 0.88)
    x 0.6 during an incident.

    Drift regimes: covariate -- a wet season: rain 15% -> 40% of hours, clear 40% -> 20%,
    temperatures 4 degC lower (same mechanism); label -- a new housing estate: volume x1.25
    at every hour; concept -- remote work: the weekday morning peak (6-9 h) shrinks to 55%
    and the evening peak (15-18 h) to 80% of its height, and weekdays move a quarter of the
    way towards the weekend profile.
    """
    r = regime
    t = start + _HOUR * np.arange(n, dtype=np.int64)
    hour = (t // _HOUR) % 24
    day = t // _DAY
    dow = ((day - 4) % 7).astype(np.int64)
    doy = _day_of_year(day)
    holiday = _is_holiday(day)

    eps = rng.normal(0, 0.6, n)
    ar = np.zeros(n)
    for i in range(1, n):
        ar[i] = 0.97 * ar[i - 1] + eps[i]
    temp = (11.0 - 8.0 * np.cos(2 * np.pi * (doy - 15) / 365.25) + 4.0 * np.cos(2 * np.pi * (hour - 15) / 24)
            + ar + r["temp_offset"])

    redraw = rng.uniform(size=n) < 0.1
    draws = rng.choice(len(_TRAFFIC_WEATHER), size=n, p=np.asarray(r["weather_p"]) / sum(r["weather_p"]))
    redraw[0] = True
    last_draw = np.maximum.accumulate(np.where(redraw, np.arange(n), 0))
    state = np.asarray(_TRAFFIC_WEATHER, dtype=object)[draws[last_draw]]
    weather = np.where((state == "rain") & (temp < 0.5), "snow", state).astype(str)
    rain = np.where(weather == "rain", np.round(rng.gamma(0.8, 1.5, n), 1), 0.0)
    snow = np.where(weather == "snow", np.round(rng.gamma(0.8, 1.0, n), 1), 0.0)
    bad = np.isin(weather, ["rain", "snow", "fog"])
    incident = (rng.uniform(size=n) < np.where(bad, 0.03, 0.015)).astype(np.int64)

    weekday = np.asarray(_TRAFFIC_WEEKDAY, dtype=float)
    hours = np.arange(24)
    weekday = weekday * np.where((hours >= 6) & (hours <= 9), r["morning_peak"], 1.0)
    weekday = weekday * np.where((hours >= 15) & (hours <= 18), r["evening_peak"], 1.0)
    weekday = (1 - r["remote_days"]) * weekday + r["remote_days"] * np.asarray(_TRAFFIC_WEEKEND, dtype=float)
    is_weekend = (dow >= 5) | (holiday == 1)
    profile = np.where(is_weekend, np.asarray(_TRAFFIC_WEEKEND, dtype=float)[hour], weekday[hour])
    season = np.where((doy >= 213) & (doy < 244), 0.93, 1.0) * np.where((doy >= 358) | (doy == 0), 0.9, 1.0)
    weather_f = np.select(
        [weather == "rain", weather == "snow", weather == "fog"],
        [0.95 - 0.02 * rain, 0.80 - 0.06 * snow, np.full(n, 0.88)],
        1.0,
    )
    mu = profile * season * np.clip(weather_f, 0.4, 1.0) * np.where(incident == 1, 0.6, 1.0) * r["level"]
    volume = rng.poisson(mu * np.exp(rng.normal(0, 0.06, n)))

    outage = np.zeros(n, dtype=bool)
    for s in np.flatnonzero(rng.uniform(size=n) < 0.0013):
        outage[s : s + int(rng.integers(3, 13))] = True
    return pd.DataFrame(
        {
            "timestamp": _to_datetime(t),
            "hour": hour.astype(np.int64),
            "day_of_week": dow,
            "is_holiday": holiday,
            "temperature_c": np.where(outage, np.nan, np.round(temp, 1)),
            "rain_mm": rain,
            "snow_mm": snow,
            "weather": weather,
            "incident": incident,
            "traffic_volume": volume.astype(np.int64),
        }
    )


# --------------------------------------------------------------------------- marketing-segments

_MARKETING_RATE_PER_DAY = 3000 / 731  # the default 3000 rows span 2024-2025
_MARKETING_WINDOW = 180  # behaviour is measured over each customer's first 180 days
_AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
# segment: (orders in 180 days, mean order value, active share of the window, channel web/store/app, age bands)
_MARKETING_SEGMENTS = {
    "loyal": (12.0, 55.0, 1.0, [0.35, 0.45, 0.20], [0.03, 0.12, 0.25, 0.27, 0.20, 0.13]),
    "bargain": (6.0, 18.0, 1.0, [0.65, 0.15, 0.20], [0.10, 0.30, 0.28, 0.17, 0.10, 0.05]),
    "young_app": (4.0, 26.0, 0.8, [0.15, 0.05, 0.80], [0.40, 0.40, 0.12, 0.05, 0.02, 0.01]),
    "lapsed": (1.2, 40.0, 0.25, [0.30, 0.60, 0.10], [0.05, 0.12, 0.18, 0.22, 0.23, 0.20]),
}
_MARKETING: dict[str, _Regime] = {
    "base": {"mix": [0.20, 0.30, 0.25, 0.25], "app_boost": 0.0, "loyal_orders": 12.0, "loyal_value": 55.0},
    "covariate": {"mix": [0.15, 0.20, 0.50, 0.15], "app_boost": 0.25},
    "concept": {"loyal_orders": 16.0, "loyal_value": 32.0},
}


def _marketing(rng: np.random.Generator, n: int, *, start: int, offset: int, seed: int, regime: _Regime) -> pd.DataFrame:
    """Synthetic customers from 4 hidden segments (the segment is not a column).

    Segments (share; orders in the first 180 days; mean order value; channel; ages):
    ``loyal`` (20%; ~12; 55 EUR; store/web; 35-64), ``bargain`` (30%; ~6; 18 EUR; web;
    25-44), ``young_app`` (25%; ~4; 26 EUR; app; 18-34), ``lapsed`` (25%; ~1; 40 EUR;
    store; older, active only early on). ``frequency`` = 1 + Poisson(orders - 1) (the
    signup order counts); ``monetary_value`` = frequency x the mean order value (LogNormal
    around the segment's order value, sigma 0.35 / sqrt(frequency)); ``recency_days`` =
    days from the last order to the end of the customer's first 180 days (180 for a single
    order at signup). Sign-ups are spread evenly, about 4 a day.

    Drift regimes: covariate -- an app launch: young_app 25% -> 50% of sign-ups and every
    segment +25 points more likely to use the app; concept -- a loyalty scheme: loyal
    customers order more often (12 -> 16) but spend less per order (55 -> 32 EUR), so
    frequency and monetary value no longer move together as before.
    """
    r = regime
    end = start + int(round(n / _MARKETING_RATE_PER_DAY * _DAY))
    times = _event_times(rng, n, start, end)
    names = list(_MARKETING_SEGMENTS)
    seg = rng.choice(len(names), size=n, p=np.asarray(r["mix"]) / sum(r["mix"]))
    params = [list(v) for v in _MARKETING_SEGMENTS.values()]
    params[0][0], params[0][1] = r["loyal_orders"], r["loyal_value"]
    orders = np.asarray([p[0] for p in params])[seg]
    value = np.asarray([p[1] for p in params])[seg]
    active = np.asarray([p[2] for p in params])[seg]
    frequency = 1 + rng.poisson(np.maximum(orders - 1, 0.05))
    # the mean of `frequency` order values varies less than one order: sigma / sqrt(frequency)
    sigma = 0.35 / np.sqrt(frequency)
    per_order = value * np.exp(rng.normal(0, sigma) - sigma**2 / 2)
    monetary = np.round(per_order * frequency, 2)
    # last order: the maximum of (frequency - 1) uniform days in the active part of the window
    latest = rng.uniform(size=n) ** (1 / np.maximum(frequency - 1, 1))
    last = np.where(frequency > 1, _MARKETING_WINDOW * active * latest, 0)
    recency = (_MARKETING_WINDOW - np.floor(last)).astype(np.int64)
    ch_p = np.asarray([p[3] for p in params])[seg]
    ch_p = ch_p + r["app_boost"] * np.asarray([0.0, 0.0, 1.0])
    channel = _choice_rows(rng, ["web", "store", "app"], ch_p)
    age_band = _choice_rows(rng, _AGE_BANDS, np.asarray([p[4] for p in params])[seg])
    return pd.DataFrame(
        {
            "customer_id": _ids("CU-", offset, n, 6),
            "signup_date": _to_datetime((times // _DAY) * _DAY),
            "recency_days": recency,
            "frequency": frequency.astype(np.int64),
            "monetary_value": monetary,
            "channel": channel,
            "age_band": age_band,
        }
    )


# --------------------------------------------------------------------------- registry of generators


@dataclass(frozen=True)
class _Generator:
    """How to make one use case's rows: the function and its regimes (base + one per scenario)."""

    make: Callable[..., pd.DataFrame]
    regimes: dict[str, _Regime]

    def regime(self, scenario: str | None) -> _Regime:
        base = dict(self.regimes["base"])
        if scenario is not None:
            base.update(self.regimes[scenario])
        return base


_GENERATORS: dict[str, _Generator] = {
    "healthcare-readmission": _Generator(_readmission, _READMISSION),
    "finance-fraud": _Generator(_fraud, _FRAUD),
    "retail-demand": _Generator(_retail, _RETAIL),
    "manufacturing-maintenance": _Generator(_maintenance, _MAINTENANCE),
    "transport-traffic": _Generator(_traffic, _TRAFFIC),
    "marketing-segments": _Generator(_marketing, _MARKETING),
}
_SCENARIO_KEY = {"covariate": 1, "label": 2, "concept": 3}


# --------------------------------------------------------------------------- public API


def _use_case(use_case: str | usecases.UseCase) -> usecases.UseCase:
    uc = usecases.get(use_case)
    if uc.id not in _GENERATORS and uc.id != "healthcare-diagnosis":
        raise ParameterError(
            f"There is no generator for use case {uc.id!r}: mlkit.datasets makes data for the built-in "
            f"use cases only ({', '.join(usecases.ids())}). Read your own CSV with pandas.read_csv instead."
        )
    return uc


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer such as 0, not {seed!r}.")
    return int(seed)


def _check_n(uc: usecases.UseCase, n: Any) -> int:
    if n is None:
        return uc.default_rows
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ParameterError(f"n must be a whole number of rows (an int such as {uc.default_rows}), not {n!r}.")
    if n < MIN_ROWS:
        raise ParameterError(
            f"n={n} is too few rows: ask for at least {MIN_ROWS} (or n=None for the default {uc.default_rows})."
        )
    if uc.id == "healthcare-diagnosis" and n > _DIAGNOSIS_ROWS:
        raise ParameterError(
            f"n={n} is more than the real data has: healthcare-diagnosis is real data with "
            f"{_DIAGNOSIS_ROWS} rows, so ask for at most n={_DIAGNOSIS_ROWS}."
        )
    return int(n)


def _baseline(uc: usecases.UseCase, seed: int, n: int) -> pd.DataFrame:
    if uc.id == "healthcare-diagnosis":
        return _diagnosis(seed, n)
    gen = _GENERATORS[uc.id]
    rng = np.random.default_rng([seed, 0])
    return gen.make(rng, n, start=_seconds(_START), offset=0, seed=seed, regime=gen.regime(None))


def load(use_case: str | usecases.UseCase, *, seed: int = 0, n: int | None = None) -> pd.DataFrame:
    """Return a use case's data: every column, personal data and the target included.

    Parameters
    ----------
    use_case : str or UseCase
        A use-case id such as ``"finance-fraud"`` (see :func:`mlkit.usecases.ids`).
    seed : int, default 0
        Every random draw starts here: the same seed gives the same rows.
    n : int, optional
        Number of rows (at least 50); ``None`` means the use case's ``default_rows``.
        ``healthcare-diagnosis`` is real data and has at most 569 rows.

    Returns
    -------
    pandas.DataFrame
        One row per record, sorted by the use case's time column when it has one.
        Identifier and category columns are strings, times are ``datetime64``, and missing
        values are NaN where real data would have gaps.

    Raises
    ------
    ParameterError
        For an unknown use case, or an ``n`` that is not an int, below 50, or above what
        real data holds.

    Examples
    --------
    >>> df = load("healthcare-readmission", n=200, seed=1)
    >>> df.shape
    (200, 16)
    >>> df["admission_date"].is_monotonic_increasing
    True
    >>> int(load("healthcare-diagnosis")["malignant"].sum())
    212
    """
    uc = _use_case(use_case)
    return _baseline(uc, _check_seed(seed), _check_n(uc, n))


def _stream_time_column(uc: usecases.UseCase) -> str:
    return uc.time_column or "arrival_time"


def _check_drift(uc: usecases.UseCase, drift: Any) -> str | None:
    if drift is None:
        return None
    valid = uc.drift_scenarios
    if not isinstance(drift, str) or drift not in valid:
        raise ParameterError(
            f"Unknown drift scenario {drift!r} for {uc.id}: use None or one of {', '.join(map(repr, valid))}."
        )
    return drift


def _check_drift_start(drift_start: Any) -> float | pd.Timestamp:
    if isinstance(drift_start, bool):
        raise ParameterError(f"drift_start must be a fraction between 0 and 1 or a timestamp, not {drift_start!r}.")
    if isinstance(drift_start, (int, float, np.integer, np.floating)):
        if not 0 < float(drift_start) < 1:
            raise ParameterError(
                f"drift_start={drift_start!r} is outside (0, 1): give the fraction of the stream before the "
                "drift strictly between 0 and 1 (e.g. 0.5), or a timestamp inside the stream."
            )
        return float(drift_start)
    if isinstance(drift_start, (str, _dt.date, np.datetime64)):
        try:
            ts = pd.Timestamp(drift_start)
        except (ValueError, TypeError):
            raise ParameterError(
                f"drift_start={drift_start!r} is not a timestamp pandas can read: use e.g. '2024-07-01' or a fraction."
            ) from None
        if ts is pd.NaT or ts.tzinfo is not None:
            raise ParameterError(f"drift_start={drift_start!r} must be a timezone-naive timestamp such as '2024-07-01'.")
        return ts
    raise ParameterError(f"drift_start must be a fraction between 0 and 1 or a timestamp, not {drift_start!r}.")


def _with_arrival(frame: pd.DataFrame, rng: np.random.Generator, start: int, offset: int) -> pd.DataFrame:
    """Add ``arrival_time`` to diagnosis rows: about one referral an hour, from ``start``."""
    n = len(frame)
    out = frame.copy()
    out.insert(1, "arrival_time", _to_datetime(_event_times(rng, n, start, start + n * _HOUR)))
    return out


def stream(
    use_case: str | usecases.UseCase,
    *,
    seed: int = 0,
    n: int | None = None,
    drift: str | None = None,
    drift_start: float | str | pd.Timestamp = 0.5,
) -> pd.DataFrame:
    """Return a use case's rows in time order, optionally with a drift from ``drift_start`` on.

    Rows before the drift are exactly the rows of the undrifted stream (which are the rows
    of :func:`load`, sorted by time); rows from the drift on are made by the same
    generator with the scenario's regime, continuing the clock. What each scenario changes
    is described in ``mlkit.usecases.get(use_case).drift`` and in each generator's notes.

    Parameters
    ----------
    use_case : str or UseCase
        A use-case id such as ``"finance-fraud"``.
    seed : int, default 0
        Every random draw starts here.
    n : int, optional
        Number of rows (at least 50); ``None`` means the use case's ``default_rows``.
    drift : {None, "covariate", "label", "concept"}, default None
        The scenario to inject; it must be one of the use case's ``drift_scenarios``.
    drift_start : float or str or pandas.Timestamp, default 0.5
        Where the drift starts: a fraction of the stream strictly between 0 and 1, or a
        time inside the stream (rows at or after it are drifted). A fraction is moved to
        the nearest start of a time step (a day for daily data), so that no date is split
        between regimes.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`load` sorted by the time column, plus a boolean ``drifted``
        (True from the drift on; all False without a drift). ``healthcare-diagnosis`` has
        no time of its own, so its stream gets an ``arrival_time`` (about one an hour).

    Raises
    ------
    ParameterError
        For an unknown scenario (the message lists the valid ones), a ``drift_start``
        outside (0, 1) or outside the stream's time span, or a bad ``n``.

    Examples
    --------
    >>> s = stream("manufacturing-maintenance", n=4000, drift="covariate", drift_start=0.5)
    >>> before, after = s[~s["drifted"]], s[s["drifted"]]
    >>> bool(after["air_temperature_k"].mean() > before["air_temperature_k"].mean() + 3)
    True
    >>> bool(stream("finance-fraud", n=500)["drifted"].any())
    False
    """
    uc = _use_case(use_case)
    seed, n = _check_seed(seed), _check_n(uc, n)
    scenario = _check_drift(uc, drift)
    start = _check_drift_start(drift_start)
    time_col = _stream_time_column(uc)

    base = _baseline(uc, seed, n)
    if uc.id == "healthcare-diagnosis":
        base = _with_arrival(base, np.random.default_rng([seed, 4]), _seconds(_START), 0)
    if scenario is None:
        return base.assign(drifted=False)

    times = base[time_col].to_numpy()
    if isinstance(start, float):
        # the drift starts with a time step (a day for daily data): take the step boundary
        # nearest to the requested row, so that no day is split between regimes
        k = min(max(int(round(start * n)), 1), n - 1)
        bounds = [int(np.searchsorted(times, times[k], side=side)) for side in ("left", "right")]
        n_before = min((b for b in bounds if 0 < b < n), key=lambda b: abs(b - k), default=0)
        cut = times[min(n_before, n - 1)]
    else:
        cut = np.datetime64(start.to_datetime64(), "us")
        n_before = int(np.searchsorted(times, cut, side="left"))
    if not 0 < n_before < n:
        raise ParameterError(
            f"drift_start={drift_start!r} is outside the stream, which runs from {pd.Timestamp(times[0])} to "
            f"{pd.Timestamp(times[-1])}: pick a time between them, or a fraction such as 0.5."
        )

    rng = np.random.default_rng([seed, 1, _SCENARIO_KEY[scenario]])
    cut_s = _seconds(cut)
    if uc.id == "healthcare-diagnosis":
        shown = set(base["patient_id"].iloc[:n_before])
        full = _breast_cancer()
        pool = full[~full["patient_id"].isin(shown)].reset_index(drop=True)
        after = _diagnosis_after(rng, pool, n - n_before, _DIAGNOSIS_DRIFT[scenario])
        after["patient_id"] = _ids("BC-", 1000, len(after), 4)  # resampled copies: BC-1001 on
        after = _with_arrival(after, rng, cut_s, n_before)
    else:
        gen = _GENERATORS[uc.id]
        after = gen.make(rng, n - n_before, start=cut_s, offset=n_before, seed=seed, regime=gen.regime(scenario))
    out = pd.concat([base.iloc[:n_before], after], ignore_index=True)
    out["drifted"] = np.arange(len(out)) >= n_before
    return out


FRAME_DRIFTS = ("covariate", "label", "concept")
"""The drift scenarios :func:`stream_frame` injects into any table."""


def _tilt(values: np.ndarray, strength: float) -> np.ndarray:
    """Weights ``exp(strength * z)`` from standardised values (missing values get weight 1)."""
    values = values.astype(float)
    spread = np.nanstd(values)
    z = (values - np.nanmean(values)) / spread if spread > 0 else np.zeros_like(values)
    return np.exp(strength * np.nan_to_num(z))


def stream_frame(
    frame: pd.DataFrame,
    use_case: usecases.UseCase,
    *,
    seed: int = 0,
    drift: str | None = None,
    drift_start: float = 0.5,
) -> pd.DataFrame:
    """Any table (a user's CSV) as a time-ordered stream, with a drift made by resampling its real rows.

    The rows are ordered by the use case's time column, or, without one, put in a random
    order drawn from ``seed`` (a file is often sorted by its target, which would look like
    drift). Rows before ``drift_start`` are kept as they are. From there on, as for the
    real-data use case ``healthcare-diagnosis``, rows are drawn with replacement from the
    rows not yet shown, with weights:

    * ``covariate``: ``exp(z)`` of the first numeric feature (``z`` standardised): larger
      values become common; each drawn row keeps its own label, so P(target | features)
      holds.
    * ``label``: classification: rows of the positive class (or, without one, of the least
      common class) twice as likely to be drawn; regression: ``exp(z)`` of the target, so its
      level rises.
    * ``concept``: rows drawn uniformly, then where the first numeric feature is above its
      median, a class label moves to the next class (regression: the target rises by one
      standard deviation). The inputs look the same; what they mean has changed.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table, with the use case's target (and time column, if it has one).
    use_case : UseCase
        From :func:`mlkit.usecases.custom` (or any supervised use case).
    seed : int, default 0
        Every random draw starts here.
    drift : {None, "covariate", "label", "concept"}, default None
        The scenario (see above); None keeps every row as it is.
    drift_start : float, default 0.5
        The fraction of the stream before the drift, strictly between 0 and 1.

    Returns
    -------
    pandas.DataFrame
        The rows in stream order (index 0..n-1) with a boolean ``drifted`` column.

    Raises
    ------
    ParameterError
        For an unknown scenario, a ``drift_start`` outside (0, 1), a table without the
        target, or (covariate, concept) without a numeric feature.

    Examples
    --------
    >>> from mlkit import usecases
    >>> rng = np.random.default_rng(0)
    >>> table = pd.DataFrame({"x": rng.normal(size=400), "y": rng.integers(0, 2, 400)})
    >>> uc = usecases.custom(name="t.csv", target="y", task="classification")
    >>> s = stream_frame(table, uc, drift="covariate", drift_start=0.5)
    >>> int(s["drifted"].sum()), bool(s.loc[s["drifted"], "x"].mean() > s.loc[~s["drifted"], "x"].mean() + 0.5)
    (200, True)
    """
    seed = _check_seed(seed)
    if drift is not None and drift not in FRAME_DRIFTS:
        raise ParameterError(f"Unknown drift scenario {drift!r}: use None or one of {', '.join(map(repr, FRAME_DRIFTS))}.")
    start = _check_drift_start(drift_start)
    if not isinstance(start, float):
        raise ParameterError(f"drift_start for a table must be a fraction between 0 and 1, not {drift_start!r}.")
    target = use_case.target
    if target not in frame.columns:
        raise ParameterError(f"The table has no target column {target!r}; pass the table the use case describes.")
    rng = np.random.default_rng([seed, 7])
    if use_case.time_column and use_case.time_column in frame.columns:
        ordered = frame.sort_values(use_case.time_column, kind="stable")
    else:
        ordered = frame.iloc[rng.permutation(len(frame))]
    ordered = ordered.reset_index(drop=True)
    n = len(ordered)
    if drift is None:
        return ordered.assign(drifted=False)
    n_before = min(max(int(round(start * n)), 1), n - 1)
    skip = {target, use_case.time_column, *use_case.id_columns, *use_case.sensitive_columns}
    numeric = [c for c in ordered.columns if c not in skip and pd.api.types.is_numeric_dtype(ordered[c])
               and not pd.api.types.is_bool_dtype(ordered[c])]
    if drift in ("covariate", "concept") and not numeric:
        raise ParameterError(f"A {drift} drift moves a numeric feature, and this table has none; use drift='label'.")
    pool = ordered.iloc[n_before:].reset_index(drop=True)
    weights = np.ones(len(pool))
    classify = use_case.task == "classification"
    if drift == "covariate":
        weights = _tilt(pool[numeric[0]].to_numpy(), 1.0)
    elif drift == "label" and classify:
        counts = ordered[target].value_counts()
        boosted = use_case.positive_label if use_case.positive_label in set(counts.index) else counts.index[-1]
        weights = np.where(pool[target] == boosted, 2.0, 1.0)
    elif drift == "label":
        weights = _tilt(pool[target].to_numpy(), 1.0)
    picks = rng.choice(len(pool), size=n - n_before, replace=True, p=weights / weights.sum())
    after = pool.iloc[picks].reset_index(drop=True)
    if use_case.time_column and use_case.time_column in after.columns:
        after[use_case.time_column] = pool[use_case.time_column].to_numpy()[: len(after)]  # the clock runs on
    if drift == "concept":
        feature = after[numeric[0]]
        moved = (feature > ordered[numeric[0]].median()).to_numpy()
        if classify:
            levels = sorted(ordered[target].dropna().unique().tolist(), key=str)
            following = {level: levels[(i + 1) % len(levels)] for i, level in enumerate(levels)}
            after.loc[moved, target] = after.loc[moved, target].map(following)
        else:
            after.loc[moved, target] = after.loc[moved, target] + float(ordered[target].std())
    out = pd.concat([ordered.iloc[:n_before], after], ignore_index=True)
    out["drifted"] = np.arange(len(out)) >= n_before
    return out


# --------------------------------------------------------------------------- committed files


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    """Serialise a frame deterministically: ISO dates, fixed column order, ``\\n`` line ends."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            values = out[col]
            date_only = bool((values.dropna() == values.dropna().dt.normalize()).all())
            out[col] = values.dt.strftime("%Y-%m-%d" if date_only else "%Y-%m-%dT%H:%M:%S")
    return out.to_csv(index=False, lineterminator="\n", na_rep="").encode("utf-8")


def sha256(frame: pd.DataFrame) -> str:
    """The sha256 of a frame serialised as the committed CSVs are (a fingerprint of the data).

    For a use case's default data (seed 0, default size) it equals that file's entry in
    ``datasets/MANIFEST``, so a model card can say exactly which rows trained the model.

    Examples
    --------
    >>> sha256(load("healthcare-diagnosis")) == sha256(load("healthcare-diagnosis"))
    True
    >>> len(sha256(load("healthcare-diagnosis", n=100)))
    64
    """
    if not isinstance(frame, pd.DataFrame):
        raise ParameterError(f"sha256 needs a pandas DataFrame, not {type(frame).__name__}.")
    return hashlib.sha256(_csv_bytes(frame)).hexdigest()


def _datasets_dir(root: str | Path | None) -> Path:
    return (Path(root) if root is not None else paths.repo_root()) / "datasets"


def _committed_name(use_case_id: str) -> str:
    return f"{use_case_id}/data.csv"


def write_committed(root: str | Path | None = None) -> dict[str, str]:
    """Write every use case's data at seed 0 and default size, and the sha256 ``MANIFEST``.

    Parameters
    ----------
    root : str or Path, optional
        The repository root; by default :func:`mlkit.paths.repo_root`. Files go to
        ``<root>/datasets/<use-case>/data.csv`` and ``<root>/datasets/MANIFEST``.

    Returns
    -------
    dict of str to str
        ``"<use-case>/data.csv"`` -> its sha256, in the order of the manifest.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     digests = write_committed(tmp)
    ...     problems = verify_manifest(tmp)
    >>> "finance-fraud/data.csv" in digests, problems
    (True, [])
    """
    folder = _datasets_dir(root)
    digests: dict[str, str] = {}
    for uc in usecases.all_use_cases():
        data = _csv_bytes(load(uc))
        target = folder / _committed_name(uc.id)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        digests[_committed_name(uc.id)] = hashlib.sha256(data).hexdigest()
    digests = dict(sorted(digests.items()))
    lines = "".join(f"{sha}  {name}\n" for name, sha in digests.items())
    (folder / _MANIFEST).write_text(lines, encoding="utf-8", newline="\n")
    return digests


def verify_manifest(root: str | Path | None = None) -> list[str]:
    """Regenerate every committed CSV in memory and compare it with the manifest and the files.

    Parameters
    ----------
    root : str or Path, optional
        The repository root; by default :func:`mlkit.paths.repo_root`.

    Returns
    -------
    list of str
        One line per mismatch (a missing manifest or file, a file that differs from its
        manifest entry, a generator whose output no longer matches); empty when all is well.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     verify_manifest(tmp)[0]
    'datasets/MANIFEST is missing: run mlkit.datasets.write_committed() (make datasets).'
    """
    folder = _datasets_dir(root)
    manifest = folder / _MANIFEST
    if not manifest.is_file():
        return ["datasets/MANIFEST is missing: run mlkit.datasets.write_committed() (make datasets)."]
    recorded: dict[str, str] = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if line.strip():
            sha, _, name = line.partition("  ")
            recorded[name.strip()] = sha.strip()
    fix = "regenerate with mlkit.datasets.write_committed() (make datasets) if the change is intended"
    problems = []
    expected = {_committed_name(uc.id): uc for uc in usecases.all_use_cases()}
    for name in sorted(set(recorded) - set(expected)):
        problems.append(f"{name}: listed in MANIFEST but no use case makes it; {fix}.")
    for name, uc in expected.items():
        if name not in recorded:
            problems.append(f"{name}: not in MANIFEST; {fix}.")
            continue
        generated = hashlib.sha256(_csv_bytes(load(uc))).hexdigest()
        if generated != recorded[name]:
            problems.append(f"{name}: the generator's output no longer matches MANIFEST; {fix}.")
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: the file is missing; {fix}.")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != recorded[name]:
            problems.append(f"{name}: the file on disk differs from MANIFEST; {fix}.")
    return problems
