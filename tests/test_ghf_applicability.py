"""Area of applicability (seisgrid.ghf.applicability): DI, training DI, threshold and d̄ against brute force."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist, pdist

from seisgrid.errors import SeisgridError
from seisgrid.ghf import crossval as cv
from seisgrid.ghf.applicability import (
    Applicability,
    ApplicabilityError,
    di_threshold,
    fit_applicability,
    mean_pairwise_distance,
    one_hot,
)


def _data(n=60, p=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, p)) * [1.0, 10.0, 0.1][:p] + [0.0, 50.0, -3.0][:p]


def _standardised(X, weights=None):
    Z = (X - X.mean(axis=0)) / X.std(axis=0, ddof=1)
    return Z if weights is None else Z * weights


def _brute_training_di(Z, fold_of=None):
    d = cdist(Z, Z)
    np.fill_diagonal(d, np.inf)
    if fold_of is not None:
        d[fold_of[:, None] == fold_of[None, :]] = np.inf
    return d.min(axis=1) / pdist(Z).mean()


def _brute_threshold(di):
    q25, q75 = np.quantile(di, [0.25, 0.75])
    return min(q75 + 1.5 * (q75 - q25), di.max())


def test_training_rows_have_di_zero_far_rows_are_outside_and_between_rows_inside():
    X = _data()
    aoa = fit_applicability(X)
    assert np.all(aoa.dissimilarity(X) == 0)
    assert aoa.applicable(X).all()
    far = X.mean(axis=0) + 10 * X.std(axis=0, ddof=1)  # 10 sd away along every feature
    di_far = aoa.dissimilarity(far)  # a 1-D row is one row
    assert di_far.shape == (1,)
    assert di_far[0] > 2 and di_far[0] > 3 * aoa.threshold
    assert not aoa.applicable(far[None, :])[0]
    # halfway between the row of median training DI and its nearest neighbour: DI ≤ median/2 ≤ threshold
    Z = _standardised(X)
    d = cdist(Z, Z)
    np.fill_diagonal(d, np.inf)
    i = int(np.argsort(aoa.training_di)[len(X) // 2])
    between = (X[i] + X[int(np.argmin(d[i]))]) / 2
    assert aoa.dissimilarity(between[None, :])[0] <= aoa.training_di[i] / 2 + 1e-12
    assert aoa.applicable(between[None, :])[0]


def test_dissimilarity_is_nearest_distance_over_mean_distance():
    X = _data()
    aoa = fit_applicability(X)
    new = np.random.default_rng(1).normal(size=(25, 3)) * [2.0, 20.0, 0.2] + [0.0, 50.0, -3.0]
    Z = _standardised(X)
    zn = (new - X.mean(axis=0)) / X.std(axis=0, ddof=1)
    expected = cdist(zn, Z).min(axis=1) / pdist(Z).mean()
    np.testing.assert_allclose(aoa.dissimilarity(new), expected, rtol=1e-12)
    np.testing.assert_array_equal(aoa.applicable(new), expected <= aoa.threshold)


def test_mean_distance_is_exact_when_all_pairs_fit_and_sampled_within_two_percent():
    X = _data(40)
    aoa = fit_applicability(X)
    assert aoa.mean_distance_pairs == 40 * 39 // 2
    np.testing.assert_allclose(aoa.mean_distance, pdist(_standardised(X)).mean(), rtol=1e-12)
    X = _data(500, seed=2)
    exact = pdist(_standardised(X)).mean()
    sampled = fit_applicability(X, pair_sample=20_000, seed=3)
    assert sampled.mean_distance_pairs == 20_000
    assert abs(sampled.mean_distance / exact - 1) < 0.02
    again = fit_applicability(X, pair_sample=20_000, seed=3)
    assert again.mean_distance == sampled.mean_distance  # seeded
    assert mean_pairwise_distance(_standardised(X), 20_000, 3)[0] == sampled.mean_distance


def test_training_di_without_folds_is_nearest_other_row():
    X = _data(50)
    aoa = fit_applicability(X)
    np.testing.assert_allclose(aoa.training_di, _brute_training_di(_standardised(X)), rtol=1e-12)


def test_training_di_with_fold_labels_and_fold_pairs_matches_brute_force():
    X = _data(50)
    fold_of = np.random.default_rng(4).integers(0, 5, 50)
    expected = _brute_training_di(_standardised(X), fold_of)
    by_labels = fit_applicability(X, fold_of)
    np.testing.assert_allclose(by_labels.training_di, expected, rtol=1e-12)
    pairs = [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(5)]
    by_pairs = fit_applicability(X, pairs)
    np.testing.assert_allclose(by_pairs.training_di, expected, rtol=1e-12)
    labels = np.array(["a", "b", "c", "d", "e"])[fold_of]  # any labels, as a list too
    np.testing.assert_allclose(fit_applicability(X, list(labels)).training_di, expected, rtol=1e-12)
    # crossval's folds, as they come
    folds = cv.random_folds(50, 5, seed=1)
    fold_of = np.empty(50, int)
    for f, (_, test) in enumerate(folds):
        fold_of[test] = f
    np.testing.assert_allclose(fit_applicability(X, folds).training_di,
                               _brute_training_di(_standardised(X), fold_of), rtol=1e-12)


def test_spatial_block_folds_are_accepted():
    rng = np.random.default_rng(5)
    lat, lon = rng.uniform(-60, 60, 80), rng.uniform(-180, 180, 80)
    folds = cv.make_folds("spatial", lat, lon, k=4, block_degrees=30.0)
    X = _data(80)
    fold_of = np.empty(80, int)
    for f, (_, test) in enumerate(folds):
        fold_of[test] = f
    aoa = fit_applicability(X, folds)
    np.testing.assert_allclose(aoa.training_di, _brute_training_di(_standardised(X), fold_of), rtol=1e-12)


def test_threshold_is_upper_whisker_capped_at_maximum():
    X = _data(50)
    fold_of = np.arange(50) % 5
    aoa = fit_applicability(X, fold_of)
    assert aoa.threshold == pytest.approx(_brute_threshold(_brute_training_di(_standardised(X), fold_of)), rel=1e-12)
    assert di_threshold([0.1, 0.2, 0.4, 1, 5]) == pytest.approx(1 + 1.5 * 0.8)  # CAST's own example: not capped
    assert di_threshold([1.0, 2.0, 3.0, 4.0]) == 4.0  # 3.25 + 1.5 × 1.5 = 5.5, capped at the maximum
    assert di_threshold([1.0, np.nan, 2.0, 3.0, 4.0]) == 4.0  # NaN ignored


def test_zero_weight_makes_a_feature_irrelevant():
    X = _data(50)
    aoa = fit_applicability(X, weights=[1.0, 0.0, 1.0])
    new = X[:10] + [0.05, 0.0, 0.01]
    moved = new.copy()
    moved[:, 1] += 1000.0  # far along the weightless feature
    np.testing.assert_array_equal(aoa.dissimilarity(new), aoa.dissimilarity(moved))
    np.testing.assert_allclose(aoa.training_di, _brute_training_di(_standardised(X, [1.0, 0.0, 1.0])), rtol=1e-12)
    named = fit_applicability(pd.DataFrame(X, columns=["a", "b", "c"]), weights={"a": 1.0, "b": 0.0, "c": 1.0})
    np.testing.assert_array_equal(named.weights, [1.0, 0.0, 1.0])


def test_round_trip_through_json_gives_identical_di():
    X = _data(60)
    fold_of = np.arange(60) % 3
    # the third fold is never held out: its rows have no training DI (NaN, None in JSON)
    pairs = [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(2)]
    aoa = fit_applicability(pd.DataFrame(X, columns=["a", "b", "c"]), pairs)
    assert np.isnan(aoa.training_di[fold_of == 2]).all()
    assert np.isfinite(aoa.training_di[fold_of != 2]).all()
    text = json.dumps(aoa.to_dict(), allow_nan=False)
    back = Applicability.from_dict(json.loads(text))
    new = np.random.default_rng(6).normal(size=(40, 3)) * [2.0, 20.0, 0.2] + [0.0, 50.0, -3.0]
    np.testing.assert_array_equal(back.dissimilarity(new), aoa.dissimilarity(new))
    np.testing.assert_array_equal(back.applicable(new), aoa.applicable(new))
    np.testing.assert_array_equal(back.training_di, aoa.training_di)
    assert back.threshold == aoa.threshold and back.mean_distance == aoa.mean_distance
    assert back.feature_names == ("a", "b", "c")


def test_dataframes_are_matched_by_column_name():
    X = pd.DataFrame(_data(30), columns=["a", "b", "c"])
    aoa = fit_applicability(X)
    new = X.iloc[:5] + 0.3
    np.testing.assert_array_equal(aoa.dissimilarity(new[["c", "a", "b"]]), aoa.dissimilarity(new.to_numpy()))
    subset = fit_applicability(X, feature_names=["c", "a"])
    assert subset.feature_names == ("c", "a")
    np.testing.assert_array_equal(subset.dissimilarity(X), np.zeros(30))


def test_errors_name_what_is_wrong():
    X = _data(20)
    aoa = fit_applicability(X)
    with pytest.raises(ValueError, match="4 columns for 3 features"):
        aoa.dissimilarity(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\['c'\] are not columns"):
        fit_applicability(pd.DataFrame(X, columns=["a", "b", "c"])).dissimilarity(pd.DataFrame(X[:, :2],
                                                                                               columns=["a", "b"]))
    with pytest.raises(ValueError, match="2 weights for 3 features"):
        fit_applicability(X, weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="19 fold labels for 20 rows"):
        fit_applicability(X, np.arange(19) % 2)
    with pytest.raises(ValueError, match="one fold"):
        fit_applicability(X, np.zeros(20))
    with pytest.raises(ValueError, match="outside 0"):
        fit_applicability(X, [(np.arange(10), np.arange(10, 21))])
    constant = pd.DataFrame({"a": X[:, 0], "flat": 2.5, "c": X[:, 2]})
    with pytest.raises(ValueError, match=r"\['flat'\] have zero variance"):
        fit_applicability(constant)
    with pytest.raises(ValueError, match="1 rows, need at least 2"):
        fit_applicability(X[:1])
    with pytest.raises(ValueError, match="non-finite values in features"):
        fit_applicability(np.where(np.arange(20)[:, None] == 3, np.nan, X))
    with pytest.raises(ValueError, match="numbers"):
        fit_applicability(pd.DataFrame({"a": X[:, 0], "kind": ["x", "y"] * 10}))
    with pytest.raises(SeisgridError):  # also a SeisgridError, like every seisgrid error a user can act on
        fit_applicability(X[:1])
    assert issubclass(ApplicabilityError, ValueError)


def test_rows_with_missing_features_get_nan_di_and_are_not_applicable():
    X = _data(20)
    aoa = fit_applicability(X)
    new = X[:4].copy()
    new[1, 2] = np.nan
    new[3, 0] = np.inf
    di = aoa.dissimilarity(new)
    assert np.isnan(di[[1, 3]]).all()
    np.testing.assert_array_equal(di[[0, 2]], [0.0, 0.0])
    np.testing.assert_array_equal(aoa.applicable(new), [True, False, True, False])


def test_one_hot_uses_training_categories():
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0], "cls": [1.0, 2.0, 1.0]})
    encoded = one_hot(train, ["cls"])
    assert list(encoded.columns) == ["a", "cls=1", "cls=2"]
    np.testing.assert_array_equal(encoded[["cls=1", "cls=2"]].to_numpy(), [[1, 0], [0, 1], [1, 0]])
    new = pd.DataFrame({"a": [0.0, 0.0, 0.0], "cls": [2.0, 7.0, np.nan]})
    coded = one_hot(new, ["cls"], categories={"cls": [1.0, 2.0]})
    assert list(coded.columns) == ["a", "cls=1", "cls=2"]
    np.testing.assert_array_equal(coded.iloc[:2, 1:].to_numpy(), [[0, 1], [0, 0]])  # unseen class: no dummy set
    assert coded.iloc[2, 1:].isna().all()
    with pytest.raises(ValueError, match="not in the table"):
        one_hot(train, ["nope"])
