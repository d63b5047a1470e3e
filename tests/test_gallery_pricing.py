"""mlkit.gallery.pricing: what the shoppers of retail-demand buy at another shelf price."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlkit import datasets
from mlkit.errors import DataError, ParameterError
from mlkit.gallery.pricing import ELASTICITY, reprice


@pytest.fixture(scope="module")
def rows():
    return datasets.load("retail-demand", n=24 * 400)


def test_elasticities_are_the_datasheet_ones():
    assert ELASTICITY == {"bread": 0.8, "milk": 0.6, "bananas": 1.2, "coffee": 1.6, "ice_cream": 1.8, "soup": 1.4}


def test_same_seed_same_counts_other_seed_other_counts(rows):
    a, b, c = (reprice(rows, 1.1, seed=s) for s in (3, 3, 4))
    pd.testing.assert_frame_equal(a, b)
    assert not a["units_sold"].equals(c["units_sold"])


def test_shape_columns_and_types_are_kept(rows):
    out = reprice(rows, 0.9, seed=0)
    assert list(out.columns) == list(rows.columns) and out.index.equals(rows.index)
    assert out["units_sold"].dtype == np.int64 and (out["units_sold"] >= 0).all()
    pd.testing.assert_frame_equal(out.drop(columns=["price", "units_sold"]), rows.drop(columns=["price", "units_sold"]))
    assert rows["price"].isna().any(), "the fixture has price-feed gaps"
    assert out["price"].isna().equals(rows["price"].isna()), "a missing price stays missing"
    known = rows["price"].notna()
    np.testing.assert_allclose(out.loc[known, "price"], (rows.loc[known, "price"] * 0.9).round(2))


def test_the_input_is_not_modified(rows):
    before = rows.copy()
    reprice(rows, 1.2, seed=0)
    pd.testing.assert_frame_equal(rows, before)


def test_no_change_keeps_every_count(rows):
    assert reprice(rows, 1.0, seed=5)["units_sold"].equals(rows["units_sold"])


@pytest.mark.parametrize("change", [0.85, 1.15])
def test_units_follow_the_constant_elasticity_curve(rows, change):
    out = reprice(rows, change, seed=1)
    for product, e in ELASTICITY.items():
        mine = rows["product"] == product
        ratio = out.loc[mine, "units_sold"].sum() / rows.loc[mine, "units_sold"].sum()
        assert ratio == pytest.approx(change ** -e, rel=0.02), product


def test_a_mapping_changes_only_the_named_prices(rows):
    change = {p: 1.0 for p in ELASTICITY} | {"coffee": 1.1}
    out = reprice(rows, change, seed=2)
    coffee = rows["product"] == "coffee"
    assert out.loc[~coffee, "units_sold"].equals(rows.loc[~coffee, "units_sold"])
    assert out.loc[coffee, "units_sold"].sum() < rows.loc[coffee, "units_sold"].sum()


def test_one_multiplier_per_row(rows):
    per_row = np.where(rows["store_id"] == "S01", 1.1, 1.0)
    out = reprice(rows, per_row, seed=0)
    other = rows["store_id"] != "S01"
    assert out.loc[other, "units_sold"].equals(rows.loc[other, "units_sold"])


@pytest.mark.parametrize("change, message", [
    (0.0, "above 0"), (-1.1, "above 0"), (np.inf, "finite"), ([1.1, 1.2], "one per row"),
    ("cheap", "numbers"), ({"bread": 1.1}, "no multiplier for product"),
])
def test_bad_changes_are_refused(rows, change, message):
    with pytest.raises(ParameterError, match=message):
        reprice(rows, change)


def test_bad_rows_and_seeds_are_refused(rows):
    with pytest.raises(DataError, match="no column"):
        reprice(rows.drop(columns="price"), 1.1)
    with pytest.raises(DataError, match="does not make"):
        reprice(rows.assign(product="tea"), 1.1)
    with pytest.raises(DataError, match="counts"):
        reprice(rows.assign(units_sold=-1), 1.1)
    with pytest.raises(DataError, match="DataFrame"):
        reprice(rows.to_dict(), 1.1)
    with pytest.raises(ParameterError, match="seed"):
        reprice(rows, 1.1, seed=-1)
    assert isinstance(ParameterError("x"), ValueError) and isinstance(DataError("x"), ValueError)
