"""Area of applicability of the heat-flow model: how far a cell's features lie from the training cells.

A model trained on the heat-flow cells of the other continents is asked to predict Antarctica, whose
feature combinations may not occur in the training set. This module implements the *dissimilarity index*
(DI) and the *area of applicability* (AOA) of

    Meyer, H. & Pebesma, E. (2021). Predicting into unknown space? Estimating the area of applicability
    of spatial prediction models. *Methods in Ecology and Evolution* 12, 1620–1633.
    https://doi.org/10.1111/2041-210X.13650

as the R package CAST implements it (``trainDI()`` / ``aoa()``, Euclidean distance, ``method = "L2"``).

Definition
----------
1. **Feature space.** Every feature is standardised with the training mean and standard deviation
   (``sd`` with ddof 1, as R's ``scale``) and multiplied by a per-feature weight (default 1 for all;
   e.g. variable importances, so that features the model ignores count less). A weight of 0 removes a
   feature from the distance.
2. **Mean distance** ``d̄``: the mean Euclidean distance between two distinct training rows. It is exact
   (all ``n(n−1)/2`` pairs, :func:`scipy.spatial.distance.pdist`) while the pairs fit in ``pair_sample``
   (200 000 by default, i.e. up to 632 rows); beyond that it is the mean over ``pair_sample`` pairs of
   distinct rows drawn uniformly with a seeded generator. With 200 000 pairs the relative standard error
   of ``d̄`` is about ``cv / 447`` (``cv`` the coefficient of variation of the pairwise distances, below 1),
   i.e. well under 0.3 %. For the ~9 300 GHF training cells (43 million pairs, a 350 MB distance vector
   for the exact mean) the sampled ``d̄`` differed from the exact one by 0.04 %.
3. **Dissimilarity index** of a new row ``x``: ``DI(x) = min_i ‖x − x_i‖ / d̄`` over the training rows
   ``x_i`` (nearest neighbour by :class:`scipy.spatial.cKDTree`). A training row has DI 0.
4. **Training DI**: for every training row the distance to the nearest training row of a *different*
   cross-validation fold, divided by ``d̄`` — the dissimilarity the fold models actually faced when that
   row was held out. Without folds it is the distance to the nearest *other* training row (duplicates
   give 0). With ``(train_idx, test_idx)`` pairs, a row's distance is to the nearest row of the training
   part of the fold(s) that hold it out; a row held out by several folds (repeated CV) takes the
   smallest; a row held out by none gets NaN and is left out of the threshold (as CAST does).
5. **Threshold**: the upper whisker of the training DI, ``Q75 + 1.5 × IQR`` (percentiles with linear
   interpolation, R's type 7, numpy's default), capped at the largest training DI (CAST ≥ 0.7.1). A cell
   with ``DI > threshold`` is **outside** the area of applicability: its features are further from the
   training data than the cross-validation ever tested, so the CV error does not describe it.

Categorical features and missing values
---------------------------------------
The distance is Euclidean on numbers, so a label-encoded categorical feature (e.g. ``tectonic_class``)
should be one-hot encoded by the caller (:func:`one_hot`, with the *training* categories for new data)
or left out; its dummy columns are then standardised like every other column (as in CAST). Rows of new
data with any non-finite feature get DI NaN and are not applicable. Training rows must be finite.

:func:`fit_applicability` returns an :class:`Applicability`; :meth:`Applicability.to_dict` /
:meth:`Applicability.from_dict` store it as JSON next to a trained ensemble (the standardised training
matrix is kept, ~9 300 × 14 floats, a few MB of JSON; the KD-tree is rebuilt from it on first use).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from seisgrid.errors import SeisgridError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

#: Identifies the JSON of :meth:`Applicability.to_dict`.
KIND = "seisgrid.ghf.applicability"


class ApplicabilityError(SeisgridError, ValueError):
    """Inputs the area of applicability cannot use (shapes, constant features, too few rows, bad folds)."""


# ------------------------------------------------------------------------------------------- inputs


def _label(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def one_hot(frame: pd.DataFrame, columns: Sequence[str],
            categories: Mapping[str, Sequence[Any]] | None = None) -> pd.DataFrame:
    """Replace label-encoded categorical columns by 0/1 dummy columns.

    Parameters
    ----------
    frame : pandas.DataFrame
        Features; the other columns are kept as they are, in their order.
    columns : sequence of str
        Columns to encode; each is replaced, in place, by one column ``"{column}={value}"`` per category.
    categories : mapping of str to sequence, optional
        Categories of each column; default: the sorted distinct non-missing values in ``frame``. Encode
        new data with the *training* categories so that the columns match: a value outside them gives
        zeros in every dummy (far from all training rows), a missing value gives NaN in every dummy.

    Returns
    -------
    pandas.DataFrame
        Float dummy columns in place of ``columns``; same index as ``frame``.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ApplicabilityError(f"one_hot: columns {missing} are not in the table (it has {list(frame.columns)})")
    parts = []
    for name in frame.columns:
        if name not in columns:
            parts.append(frame[[name]])
            continue
        values = frame[name]
        levels = list(categories[name]) if categories is not None and name in categories \
            else sorted(pd.unique(values.dropna()))
        dummies = {f"{name}={_label(level)}": (values == level).astype(float) for level in levels}
        block = pd.DataFrame(dummies, index=frame.index)
        block[values.isna().to_numpy()] = np.nan
        parts.append(block)
    return pd.concat(parts, axis=1) if parts else frame.copy()


def _matrix(X: ArrayLike | pd.DataFrame, names: Sequence[str] | None, what: str) -> tuple[np.ndarray, list[str]]:
    """``X`` as a float (n, p) matrix and its column names (``names`` select DataFrame columns)."""
    if isinstance(X, pd.DataFrame):
        if names is not None:
            absent = [n for n in names if n not in X.columns]
            if absent:
                raise ApplicabilityError(f"{what}: features {absent} are not columns of the table "
                                         f"(it has {list(X.columns)})")
            X = X[list(names)]
        names = [str(c) for c in X.columns]
        try:
            matrix = X.to_numpy(dtype=float)
        except (TypeError, ValueError) as error:
            raise ApplicabilityError(f"{what}: features must be numbers ({error}); one-hot encode categorical "
                                     "columns first (one_hot)") from None
    else:
        try:
            matrix = np.asarray(X, dtype=float)
        except (TypeError, ValueError) as error:
            raise ApplicabilityError(f"{what}: features must be numbers ({error})") from None
        if matrix.ndim != 2:
            raise ApplicabilityError(f"{what}: expected an (n, p) matrix, got shape {matrix.shape}")
        if names is None:
            names = [f"x{j}" for j in range(matrix.shape[1])]
        names = [str(n) for n in names]
        if len(names) != matrix.shape[1]:
            raise ApplicabilityError(f"{what}: {len(names)} feature names for {matrix.shape[1]} columns")
    return matrix, list(names)


def _weights(weights: ArrayLike | Mapping[str, float] | None, names: Sequence[str]) -> np.ndarray:
    if weights is None:
        return np.ones(len(names))
    if isinstance(weights, Mapping):
        absent = [n for n in names if n not in weights]
        if absent:
            raise ApplicabilityError(f"weights: no weight for features {absent}")
        weights = [weights[n] for n in names]
    w = np.asarray(weights, dtype=float).ravel()
    if w.shape != (len(names),):
        raise ApplicabilityError(f"{w.size} weights for {len(names)} features ({', '.join(names)})")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ApplicabilityError(f"weights must be finite and non-negative, got {w.tolist()}")
    if not np.any(w > 0):
        raise ApplicabilityError("weights: all zero, so every row would lie at distance 0")
    return w


def _is_pair(fold: Any) -> bool:
    """Whether a fold is a ``(train_idx, test_idx)`` pair rather than a label."""
    if isinstance(fold, (str, bytes)) or not isinstance(fold, (Sequence, np.ndarray)) or len(fold) != 2:
        return False
    return all(isinstance(part, (Sequence, np.ndarray)) and not isinstance(part, (str, bytes)) for part in fold)


def _fold_pairs(folds: Any, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` (labels per row, or ``(train_idx, test_idx)`` pairs) as pairs of integer positions."""
    is_pairs = not isinstance(folds, np.ndarray) and len(folds) > 0 and all(_is_pair(f) for f in folds)
    if not is_pairs:
        labels = np.asarray(folds)
        if labels.shape != (n,):
            raise ApplicabilityError(f"folds: {labels.shape[0] if labels.ndim else 0} fold labels for {n} rows "
                                     "(give one label per row, or (train_idx, test_idx) pairs)")
        if pd.isna(labels).any():
            raise ApplicabilityError("folds: missing fold labels")
        ids = np.unique(labels, return_inverse=True)[1].ravel()
        if ids.max() < 1:
            raise ApplicabilityError("folds: all rows are in one fold, so no row has a row in another fold")
        rows = np.arange(n)
        return [(rows[ids != f], rows[ids == f]) for f in range(ids.max() + 1)]
    pairs = []
    for i, fold in enumerate(folds):
        parts = []
        for part in fold:
            index = np.asarray(part)
            if index.dtype == bool:
                if index.shape != (n,):
                    raise ApplicabilityError(f"folds[{i}]: boolean mask of shape {index.shape} for {n} rows")
                index = np.flatnonzero(index)
            if index.size and not np.issubdtype(index.dtype, np.integer):
                raise ApplicabilityError(f"folds[{i}]: positions must be integers (or a boolean mask), "
                                         f"got {index.dtype}")
            index = index.astype(np.int64).ravel()
            if index.size and (index.min() < 0 or index.max() >= n):
                raise ApplicabilityError(f"folds[{i}]: positions outside 0 … {n - 1}")
            parts.append(index)
        if not parts[0].size:
            raise ApplicabilityError(f"folds[{i}]: empty training part")
        pairs.append((parts[0], parts[1]))
    return pairs


# ----------------------------------------------------------------------------------------- distances


def mean_pairwise_distance(Z: np.ndarray, pair_sample: int = 200_000, seed: int = 0) -> tuple[float, int]:
    """Mean Euclidean distance between distinct rows of ``Z``: exact, or over a random sample of pairs.

    Parameters
    ----------
    Z : numpy.ndarray
        (n, p) rows, n ≥ 2.
    pair_sample : int
        All ``n(n−1)/2`` pairs are used when there are at most this many; otherwise this many pairs of
        distinct rows, drawn uniformly (with replacement) with ``numpy.random.default_rng(seed)``.
    seed : int
        Seed of the pair sample.

    Returns
    -------
    mean : float
        The mean distance ``d̄``.
    pairs : int
        Number of pairs it is the mean of (``n(n−1)/2`` when exact).
    """
    from scipy.spatial.distance import pdist

    if int(pair_sample) < 1:
        raise ApplicabilityError(f"pair_sample={pair_sample}: need at least one pair")
    n = len(Z)
    total = n * (n - 1) // 2
    if total <= int(pair_sample):
        return float(np.mean(pdist(Z))), total
    rng = np.random.default_rng(seed)
    m = int(pair_sample)
    i = rng.integers(0, n, m)
    j = rng.integers(0, n - 1, m)
    j += j >= i  # uniform over ordered pairs of distinct rows, hence over unordered pairs
    out = 0.0
    for start in range(0, m, 50_000):
        a, b = i[start:start + 50_000], j[start:start + 50_000]
        out += float(np.sqrt(np.sum((Z[a] - Z[b]) ** 2, axis=1)).sum())
    return out / m, m


def _training_distance(Z: np.ndarray, tree: cKDTree, pairs: list | None) -> np.ndarray:
    """Per training row, the distance to the nearest training row of another fold (NaN: never held out)."""
    if pairs is None:
        return tree.query(Z, k=2, workers=-1)[0][:, 1]
    out = np.full(len(Z), np.inf)
    tested = np.zeros(len(Z), bool)
    for train, test in pairs:
        if not test.size:
            continue
        distance = cKDTree(Z[train]).query(Z[test], k=1, workers=-1)[0]
        np.minimum.at(out, test, distance)
        tested[test] = True
    out[~tested] = np.nan
    return out


def di_threshold(training_di: ArrayLike) -> float:
    """Upper whisker of the training DI: ``Q75 + 1.5 × IQR`` (linear percentiles), capped at its maximum.

    NaN values are ignored (CAST's ``.di_threshold``).
    """
    di = np.asarray(training_di, dtype=float)
    di = di[np.isfinite(di)]
    if not di.size:
        raise ApplicabilityError("no finite training DI: no row was held out by any fold")
    q25, q75 = np.percentile(di, [25.0, 75.0])
    return float(min(q75 + 1.5 * (q75 - q25), di.max()))


# ------------------------------------------------------------------------------------------- the model


@dataclasses.dataclass(frozen=True, eq=False)
class Applicability:
    """A fitted area of applicability (:func:`fit_applicability`).

    Attributes
    ----------
    feature_names : tuple of str
        Column order of the feature space (DataFrames passed later are reordered by these names).
    mean, sd : numpy.ndarray
        (p,) training mean and standard deviation (ddof 1) of each feature.
    weights : numpy.ndarray
        (p,) weights applied after standardising.
    mean_distance : float
        ``d̄``, the mean distance between two distinct training rows in the weighted standardised space.
    mean_distance_pairs : int
        Number of row pairs ``d̄`` is the mean of (``n(n−1)/2``: exact).
    training : numpy.ndarray
        (n, p) the training rows, standardised and weighted.
    training_di : numpy.ndarray
        (n,) DI of each training row against the rows of the other folds (NaN: held out by no fold).
    threshold : float
        Largest DI inside the area of applicability.
    """

    feature_names: tuple[str, ...]
    mean: np.ndarray
    sd: np.ndarray
    weights: np.ndarray
    mean_distance: float
    mean_distance_pairs: int
    training: np.ndarray
    training_di: np.ndarray
    threshold: float

    @functools.cached_property
    def tree(self) -> cKDTree:
        """KD-tree of :attr:`training`, built on first use."""
        return cKDTree(self.training)

    def transform(self, X: ArrayLike | pd.DataFrame) -> np.ndarray:
        """Rows of ``X`` (n, p; a DataFrame is reordered by :attr:`feature_names`) standardised and weighted.

        A 1-D ``X`` of length p is one row.
        """
        if not isinstance(X, pd.DataFrame) and np.ndim(X) == 1:
            X = np.asarray(X, dtype=float)[None, :]
        matrix, _ = _matrix(X, self.feature_names if isinstance(X, pd.DataFrame) else None, "new data")
        if matrix.shape[1] != len(self.feature_names):
            raise ApplicabilityError(f"new data: {matrix.shape[1]} columns for {len(self.feature_names)} features "
                                     f"({', '.join(self.feature_names)})")
        return (matrix - self.mean) / self.sd * self.weights

    def dissimilarity(self, X: ArrayLike | pd.DataFrame) -> np.ndarray:
        """Dissimilarity index of each row: distance to the nearest training row / :attr:`mean_distance`.

        Parameters
        ----------
        X : array_like or pandas.DataFrame
            (n, p) features in :attr:`feature_names` order, or a DataFrame holding those columns.

        Returns
        -------
        numpy.ndarray
            (n,) DI ≥ 0; NaN for rows with a non-finite feature.
        """
        Z = self.transform(X)
        out = np.full(len(Z), np.nan)
        ok = np.all(np.isfinite(Z), axis=1)
        if ok.any():
            out[ok] = self.tree.query(Z[ok], k=1, workers=-1)[0] / self.mean_distance
        return out

    def applicable(self, X: ArrayLike | pd.DataFrame) -> np.ndarray:
        """Whether each row is inside the area of applicability (``DI ≤ threshold``; NaN DI: False)."""
        with np.errstate(invalid="ignore"):
            return self.dissimilarity(X) <= self.threshold

    def to_dict(self) -> dict:
        """JSON-ready description (NaN training DI as None); :meth:`from_dict` rebuilds it exactly."""
        return {
            "kind": KIND, "method": "Meyer & Pebesma (2021) area of applicability, Euclidean (CAST aoa, L2)",
            "feature_names": list(self.feature_names), "mean": self.mean.tolist(), "sd": self.sd.tolist(),
            "weights": self.weights.tolist(), "mean_distance": self.mean_distance,
            "mean_distance_pairs": self.mean_distance_pairs, "threshold": self.threshold,
            "training": self.training.tolist(),
            "training_di": [None if math.isnan(v) else v for v in self.training_di.tolist()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Applicability:
        """The :class:`Applicability` of :meth:`to_dict` output (e.g. after ``json.loads``)."""
        if data.get("kind", KIND) != KIND:
            raise ApplicabilityError(f"not an area-of-applicability description (kind={data.get('kind')!r})")
        names = tuple(str(n) for n in data["feature_names"])
        training = np.asarray(data["training"], dtype=float).reshape(-1, len(names))
        di = np.asarray([np.nan if v is None else v for v in data["training_di"]], dtype=float)
        return cls(feature_names=names, mean=np.asarray(data["mean"], dtype=float),
                   sd=np.asarray(data["sd"], dtype=float), weights=np.asarray(data["weights"], dtype=float),
                   mean_distance=float(data["mean_distance"]), mean_distance_pairs=int(data["mean_distance_pairs"]),
                   training=training, training_di=di, threshold=float(data["threshold"]))


def fit_applicability(X: ArrayLike | pd.DataFrame,
                      folds: ArrayLike | Sequence[tuple[ArrayLike, ArrayLike]] | None = None, *,
                      feature_names: Sequence[str] | None = None,
                      weights: ArrayLike | Mapping[str, float] | None = None, pair_sample: int = 200_000,
                      seed: int = 0) -> Applicability:
    """Fit the area of applicability of a model trained on the rows of ``X`` (Meyer & Pebesma 2021).

    Parameters
    ----------
    X : array_like or pandas.DataFrame
        (n, p) training features, n ≥ 2, all finite and numeric (one-hot encode categorical codes first,
        :func:`one_hot`). A DataFrame gives the feature names (its columns, or the ``feature_names`` it
        holds, in that order).
    folds : array_like or list of (array_like, array_like), optional
        The cross-validation folds of the model: a fold label per row, or ``(train_idx, test_idx)``
        pairs as :func:`seisgrid.ghf.crossval.make_folds` returns. Default: none, each training row is
        compared with its nearest other row.
    feature_names : sequence of str, optional
        Names of the columns of an array (default ``x0, x1, …``), or the columns to take from a DataFrame.
    weights : array_like or mapping, optional
        (p,) non-negative weight per feature (or ``{name: weight}``), applied after standardising;
        default 1 each.
    pair_sample : int
        Largest number of row pairs for the mean distance ``d̄``: exact up to that many pairs, else the
        mean over that many random pairs (:func:`mean_pairwise_distance`).
    seed : int
        Seed of the pair sample.

    Returns
    -------
    Applicability

    Raises
    ------
    ApplicabilityError
        (a ``ValueError``) for fewer than 2 rows, non-finite values, a constant feature, weights or folds
        that do not fit ``X``.
    """
    matrix, names = _matrix(X, feature_names, "training data")
    n, p = matrix.shape
    if n < 2:
        raise ApplicabilityError(f"training data: {n} rows, need at least 2")
    if p < 1:
        raise ApplicabilityError("training data: no features")
    bad = [names[j] for j in range(p) if not np.all(np.isfinite(matrix[:, j]))]
    if bad:
        raise ApplicabilityError(f"training data: non-finite values in features {bad}; drop those rows first")
    mean = matrix.mean(axis=0)
    sd = matrix.std(axis=0, ddof=1)
    constant = [names[j] for j in range(p) if not sd[j] > 0]
    if constant:
        raise ApplicabilityError(f"training data: features {constant} have zero variance (one value in every "
                                 "row); leave them out")
    w = _weights(weights, names)
    pairs = _fold_pairs(folds, n) if folds is not None else None
    Z = (matrix - mean) / sd * w
    d_bar, used = mean_pairwise_distance(Z, pair_sample, seed)
    if not d_bar > 0:
        raise ApplicabilityError("training data: all rows are identical in the weighted feature space")
    tree = cKDTree(Z)
    training_di = _training_distance(Z, tree, pairs) / d_bar
    result = Applicability(feature_names=tuple(names), mean=mean, sd=sd, weights=w, mean_distance=d_bar,
                           mean_distance_pairs=used, training=Z, training_di=training_di,
                           threshold=di_threshold(training_di))
    result.__dict__["tree"] = tree  # the cached_property's slot: no second build
    return result
