"""What shoppers would have bought at another shelf price: the price response of ``retail-demand``.

The use case ``retail-demand`` (:mod:`mlkit.datasets`) sells at the prices its generator draws.
A pricing story needs the other half of the world: once a job moves a shelf price, what do the
same shoppers buy? :func:`reprice` answers with the generator's own demand curve, so a notebook
can deploy a price and then watch what it really sells.

Assumptions (the generator's, see ``datasets/retail-demand/datasheet.md``):

- demand has a **constant price elasticity** per product: multiplying the price by ``c``
  multiplies the expected units by ``c ** -elasticity``, whatever else happens that day
  (weekday, weather, promotion, holiday, drift regime);
- the elasticities are fixed: bread 0.8, milk 0.6, bananas 1.2, coffee 1.6, ice cream 1.8,
  soup 1.4 (:data:`ELASTICITY`), the same in every store and in every drift scenario (the
  ``concept`` drift changes the promotion lift, not the elasticity);
- sales equal demand: no stock-outs, no shoppers switching to another product or store.

A real shop never sees :data:`ELASTICITY`; a notebook may show it only as the answer key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mlkit.datasets import _RETAIL_PRODUCTS  # the generator's own constants: the world, not a model of it
from mlkit.errors import DataError, ParameterError

__all__ = ["ELASTICITY", "reprice"]

ELASTICITY: dict[str, float] = {name: float(values[2]) for name, values in _RETAIL_PRODUCTS.items()}
"""The generator's price elasticity of each product (the answer key a real shop never sees)."""

_NEEDED = ("product", "price", "units_sold")


def _changes(rows: pd.DataFrame, change: Any) -> np.ndarray:
    """One price multiplier per row, from a number, a mapping product -> number, or one number per row."""
    if isinstance(change, Mapping):
        missing = sorted(set(rows["product"]) - set(change))
        if missing:
            raise ParameterError(f"change has no multiplier for product(s) {', '.join(map(repr, missing))}; "
                                 "give one for every product in rows (1.0 keeps a price).")
        values = rows["product"].map(lambda p: change[p]).to_numpy()
    elif np.ndim(change) == 0:
        values = np.full(len(rows), change)
    else:
        values = np.asarray(change)
        if values.shape != (len(rows),):
            raise ParameterError(f"change has {values.size} values for {len(rows)} rows; give one per row, "
                                 "a mapping product -> multiplier, or a single number.")
    try:
        values = values.astype(float)
    except (TypeError, ValueError):
        raise ParameterError("change must hold numbers (price multipliers such as 1.05).") from None
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ParameterError("Every price multiplier in change must be a finite number above 0 (1.05 is +5%).")
    return values


def reprice(rows: pd.DataFrame, change: Any, *, seed: int = 0) -> pd.DataFrame:
    """The same days, sold at ``price * change``: what the shoppers would have bought instead.

    The expected units of a row become ``units * change ** -elasticity`` (its product's
    :data:`ELASTICITY`). The new count is drawn around the row's own sales, so the same shoppers
    stay behind it: a lower count keeps each unit sold with probability ``f = change **
    -elasticity`` (binomial thinning, exact for the generator's Poisson counts), a higher one
    adds ``Poisson(units * (f - 1))`` units. Prices are multiplied too (a missing price, a gap in
    the price feed, stays missing).

    Parameters
    ----------
    rows : pandas.DataFrame
        Rows of ``retail-demand`` (at least ``product``, ``price`` and ``units_sold``).
    change : float, mapping or array-like
        The price multiplier: one number for every row, a mapping product -> multiplier, or
        one number per row. 1.10 is a 10% increase.
    seed : int, default 0
        The draws start here: the same seed gives the same counts.

    Returns
    -------
    pandas.DataFrame
        A copy of ``rows`` with ``price`` and ``units_sold`` at the new prices.

    Raises
    ------
    DataError
        ``rows`` lacks a needed column or holds a product the generator does not make.
    ParameterError
        ``change`` is not positive and finite, has the wrong length, or misses a product.

    Examples
    --------
    >>> from mlkit import datasets
    >>> rows = datasets.load("retail-demand", n=2400)
    >>> dearer = reprice(rows, {"bread": 1.1, "milk": 1.0, "bananas": 1.0, "coffee": 1.0,
    ...                         "ice_cream": 1.0, "soup": 1.0}, seed=1)
    >>> bread = rows["product"] == "bread"
    >>> ratio = dearer.loc[bread, "units_sold"].sum() / rows.loc[bread, "units_sold"].sum()
    >>> round(float(ratio), 2), round(1.1 ** -ELASTICITY["bread"], 2)
    (0.93, 0.93)
    >>> bool((dearer.loc[~bread, "units_sold"] == rows.loc[~bread, "units_sold"]).all())
    True
    """
    if not isinstance(rows, pd.DataFrame):
        raise DataError(f"rows must be a DataFrame of retail-demand rows, not {type(rows).__name__}.")
    missing = [c for c in _NEEDED if c not in rows.columns]
    if missing:
        raise DataError(f"rows has no column(s) {', '.join(map(repr, missing))}; pass rows of retail-demand.")
    unknown = sorted(set(rows["product"]) - set(ELASTICITY))
    if unknown:
        raise DataError(f"rows holds product(s) the generator does not make: {', '.join(map(repr, unknown))}; "
                        f"known: {', '.join(ELASTICITY)}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer such as 0, not {seed!r}.")
    multiplier = _changes(rows, change)
    units = rows["units_sold"].to_numpy()
    if np.any(units < 0) or pd.isna(units).any():
        raise DataError("units_sold must be counts (0 or more, no missing values).")
    units = units.astype(np.int64)
    factor = multiplier ** -rows["product"].map(ELASTICITY).to_numpy(dtype=float)
    rng = np.random.default_rng([int(seed), 11])
    kept = rng.binomial(units, np.minimum(factor, 1.0))
    added = rng.poisson(units * np.maximum(factor - 1.0, 0.0))
    out = rows.copy()
    out["price"] = (rows["price"].to_numpy(dtype=float) * multiplier).round(2)
    out["units_sold"] = (kept + added).astype(np.int64)
    return out
