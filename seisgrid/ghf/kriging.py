"""Ordinary kriging (pykrige) of scattered or gridded source points onto the global GHF grid, tiled on Dask.

How a feature is regridded
--------------------------
1. **Clean**: NaN values or coordinates are dropped (logged), longitudes wrapped into [-180, 180).
2. **Thin dense sources**: when the source has on average two or more points per target cell (e.g. 10′
   topography onto 0.5°), the points of each target cell are averaged first (mean position on the
   sphere, mean value). That is the anti-aliasing a cell value needs anyway, and it bounds the number
   of points by the number of cells.
3. **One variogram** (:func:`fit_variogram`): the empirical semivariogram of a seeded subsample, in
   great-circle degrees up to a few neighbourhood radii, fitted by weighted least squares (Cressie's
   weights) with pykrige's gaussian, spherical or exponential model; the nugget is kept ≥
   ``nugget_floor`` × sill (a nugget-free Gaussian model makes the systems ill-conditioned). The
   default model ``auto`` fits all three and keeps the one with the lowest leave-one-out RMSE: no
   single model wins on the sources at hand (Gaussian is ~3× better on smooth 2° tomography,
   exponential/spherical ~20 % better on rough 1° CRUST1.0 Moho). Every tile kriges with these fixed
   parameters, so tiles cannot disagree because of their own fits.
4. **Tiles**: the target grid is cut into ``tile_degrees`` squares; each is one Dask task
   (:func:`seisgrid.cluster.run_tasks`; ``client=None`` runs them here, one after the other). The source
   points are sent to the cluster once (:func:`seisgrid.cluster.share`).
5. **Local neighbourhood**: in a task, a KD-tree on :func:`seisgrid.ghf.grid.unit_vectors` (chord
   distance, so the dateline and the poles need no special case) gives each cell its ``n_closest``
   source points. The tile's pykrige system holds exactly the union of those neighbourhoods, so pykrige's
   own moving window (``execute(..., n_closest_points=n_closest)``, chord KD-tree then great-circle
   distances) picks the same points for a cell as a single global system would: tiles agree at seams.
   pykrige's constructor (which bins all pairs for a variogram plot even when the parameters are
   given) and its kriging matrix are O(n²) in a system's points, so a tile whose union holds more than
   ``max_points_per_tile`` points is split in halves (recursively) inside its task. The split does not
   change any cell's neighbours, hence not the result, and small systems are much faster: the global
   0.5° grid from the 1° CRUST1.0 nodes took 13 s with a 2000-point cap and 3.3 s with 150–200 (one
   core), with identical values. The cap also bounds memory for dense sources.
6. **pykrige**: ``OrdinaryKriging(..., coordinates_type="geographic", exact_values=False)`` with the
   fixed variogram; ``execute("points", ..., backend="C", n_closest_points=...)``. pykrige's moving window
   exists only in the "loop" and "C" backends ("vectorized" refuses ``n_closest_points``); the Cython
   loop is ~2× faster. ``exact_values=False`` treats the nugget as measurement error, so the map stays
   continuous where a cell centre falls on a source point.

Units: variogram ranges are degrees of arc (pykrige's geographic distances), also given in km.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from seisgrid import config
from seisgrid.cluster import resolve_client, run_tasks, share
from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.ghf import grid

if TYPE_CHECKING:
    from distributed import Client
    from numpy.typing import ArrayLike

    from seisgrid.cluster import LazyClient

logger = logging.getLogger("seisgrid")

MODELS = ("gaussian", "spherical", "exponential")  # "auto" picks one of these by leave-one-out RMSE
MIN_POINTS = 3
# Pairs for the empirical variogram: each of `variogram_sample` anchor points against every point of a
# larger subsample (this many times the anchors) within the largest lag — short lags stay well sampled.
_PARTNER_FACTOR = 25
_N_LAGS = 30
# Automatic largest lag: this many neighbourhood radii, the scales a moving window actually uses.
_LAG_FACTOR = 4.0


class KrigingInputError(SeisgridError, ValueError):
    """Source points or kriging options that cannot be kriged; the message says what and why."""


def _setting(key: str, override, cast):
    value = config.get(f"kriging.{key}", override=override)
    if value is None:
        raise ConfigError(f"kriging.{key}: no value; set it in seisgrid.yaml or pass {key}=...")
    try:
        return cast(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"kriging.{key}={value!r}: expected {cast.__name__}") from exc


def _clean(lon, lat, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D float arrays with NaN rows dropped and longitudes wrapped; errors name the problem."""
    try:
        lon, lat, values = (np.asarray(a, dtype=float).ravel() for a in (lon, lat, values))
    except (TypeError, ValueError) as exc:
        raise KrigingInputError(f"source points: lon, lat and values must be numeric arrays ({exc})") from exc
    if not (lon.size == lat.size == values.size):
        raise KrigingInputError(
            f"source points: lon, lat and values have different lengths ({lon.size}, {lat.size}, {values.size}); "
            "pass one value per point")
    good = np.isfinite(lon) & np.isfinite(lat) & np.isfinite(values)
    if not good.any():
        raise KrigingInputError(f"source points: all {lon.size} points have a NaN value or coordinate; "
                                "nothing to krige")
    if (~good).any():
        logger.info("kriging: dropped %d of %d source points with a NaN value or coordinate", (~good).sum(), lon.size)
    lon, lat, values = lon[good], lat[good], values[good]
    if np.abs(lat).max() > 90.0:
        bad = int(np.argmax(np.abs(lat)))
        raise KrigingInputError(f"source points: latitude {lat[bad]} outside [-90, 90]; are lon and lat swapped?")
    lon, lat, values = _merge_duplicates(grid.wrap_longitude(lon), lat, values)
    if lon.size < MIN_POINTS:
        raise KrigingInputError(
            f"source points: {lon.size} valid point(s) at distinct places; kriging needs at least {MIN_POINTS}")
    return lon, lat, values


def _merge_duplicates(lon, lat, values):
    """Points at the same place (within ~1 m; e.g. the 180 nodes of a grid's pole row) become one.

    The merged point has their mean value: co-located points only make the kriging systems singular-prone
    and slow.
    """
    xyz = grid.unit_vectors(lat, lon)
    keys = np.round(xyz * 1e7).astype(np.int64)
    _, first, inverse, counts = np.unique(keys, axis=0, return_index=True, return_inverse=True, return_counts=True)
    if first.size == lon.size:
        return lon, lat, values
    logger.info("kriging: %d source points share a place with another; merged into %d points (mean values)",
                int(counts[counts > 1].sum()), int((counts > 1).sum()))
    inverse = inverse.ravel()
    return lon[first], lat[first], np.bincount(inverse, weights=values) / counts


def _lonlat(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xyz = xyz / np.linalg.norm(xyz, axis=-1, keepdims=True)
    return np.degrees(np.arctan2(xyz[..., 1], xyz[..., 0])), np.degrees(np.arcsin(np.clip(xyz[..., 2], -1.0, 1.0)))


def _chord(degrees: float) -> float:
    return 2.0 * math.sin(math.radians(min(degrees, 180.0)) / 2.0)


def _aggregate_to_cells(lon, lat, values, res: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average the points that share a target cell: mean unit vector (position) and mean value."""
    i, j = grid.cell_index(lat, lon, res)
    n_lon = round(360.0 / res)
    cells, inverse, counts = np.unique(i * n_lon + j, return_inverse=True, return_counts=True)
    xyz = grid.unit_vectors(lat, lon)
    mean = np.stack([np.bincount(inverse, weights=xyz[:, c], minlength=cells.size) for c in range(3)], axis=1)
    out_lon, out_lat = _lonlat(mean)
    out_values = np.bincount(inverse, weights=values, minlength=cells.size) / counts
    return grid.wrap_longitude(out_lon), out_lat, out_values


def _model_function(model: str):
    from pykrige import variogram_models

    if model not in MODELS:
        raise ConfigError(f"kriging.variogram_model={model!r}: expected one of {[*MODELS, 'auto']}")
    return getattr(variogram_models, f"{model}_variogram_model")


def _empirical_variogram(lon, lat, values, max_points: int, max_lag: float, seed: int):
    """Binned semivariance of anchor–partner pairs closer than ``max_lag`` degrees (great circle)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    n = lon.size
    order = rng.permutation(n)
    partners = order[: min(n, _PARTNER_FACTOR * max_points)]
    anchors = partners[: min(n, max_points)]
    xyz_p = grid.unit_vectors(lat[partners], lon[partners])
    xyz_a = grid.unit_vectors(lat[anchors], lon[anchors])
    tree = cKDTree(xyz_p)
    edges = np.linspace(0.0, max_lag, _N_LAGS + 1)
    sums = np.zeros(_N_LAGS)
    sq = np.zeros(_N_LAGS)
    counts = np.zeros(_N_LAGS)
    z_p = values[partners]
    chunk = 100
    for start in range(0, anchors.size, chunk):
        hits = tree.query_ball_point(xyz_a[start:start + chunk], r=_chord(max_lag), return_sorted=False)
        rows = np.repeat(np.arange(len(hits)), [len(h) for h in hits])
        cols = np.concatenate([np.asarray(h, dtype=np.int64) for h in hits])
        rows = rows + start
        chord = np.linalg.norm(xyz_a[rows] - xyz_p[cols], axis=1)
        keep = chord > 0.0  # the anchor itself (and exact duplicates)
        dist = np.degrees(2.0 * np.arcsin(np.clip(chord[keep] / 2.0, 0.0, 1.0)))
        gamma = 0.5 * (values[anchors][rows[keep]] - z_p[cols[keep]]) ** 2
        b = np.clip(np.searchsorted(edges, dist, side="right") - 1, 0, _N_LAGS - 1)
        sums += np.bincount(b, weights=dist, minlength=_N_LAGS)
        sq += np.bincount(b, weights=gamma, minlength=_N_LAGS)
        counts += np.bincount(b, minlength=_N_LAGS)
    filled = counts > 0
    return sums[filled] / counts[filled], sq[filled] / counts[filled], counts[filled], anchors.size


def _fit_model(model: str, lags, gamma, pairs, max_lag: float, floor: float) -> tuple[float, float, float]:
    """(psill, range, nugget) of ``model`` fitted to an empirical variogram, Cressie weights; nugget ≥ floor."""
    from scipy.optimize import least_squares

    fn = _model_function(model)
    top = float(gamma.max())
    eps = 1e-6 * top

    def residuals(p):
        m = fn(p, lags)
        return np.sqrt(pairs) * (gamma - m) / (m + eps)

    start = [max(top - gamma[0], 0.5 * top), 0.5 * max_lag, float(gamma[0]) * 0.5]
    lower, upper = [0.0, 0.1 * (max_lag / _N_LAGS), 0.0], [2.0 * top, 4.0 * max_lag, top]
    fit = least_squares(residuals, np.clip(start, lower, upper), bounds=(lower, upper), loss="soft_l1")
    psill, rng, nugget = (float(v) for v in fit.x)
    if psill <= 0.0:  # pure nugget fit: no spatial structure within max_lag; keep a little so systems solve
        psill = 1e-3 * max(nugget, top)
    nugget = max(nugget, floor * (psill + nugget))
    return psill, rng, nugget


def _loo_rmse(lon, lat, values, model: str, params, n_closest: int, n_test: int, seed: int) -> float:
    """Leave-one-out RMSE of ordinary kriging with ``n_closest`` neighbours at ``n_test`` seeded points.

    The small systems are solved here with NumPy (the same equations as pykrige's, pykrige's variogram
    function) because pykrige cannot leave the target point out of its own neighbourhood.
    """
    from scipy.spatial import cKDTree

    fn = _model_function(model)
    xyz = grid.unit_vectors(lat, lon)
    k = min(n_closest, lon.size - 1)
    probe = np.random.default_rng(seed + 1).permutation(lon.size)[:n_test]
    _, idx = cKDTree(xyz).query(xyz[probe], k=k + 1)
    nb = idx[:, 1:]  # drop the point itself (duplicates were merged, so it is the nearest)

    def arc(a, b):
        return np.degrees(2.0 * np.arcsin(np.clip(np.linalg.norm(a - b, axis=-1) / 2.0, 0.0, 1.0)))

    p = np.asarray(params, dtype=float)
    a = np.zeros((probe.size, k + 1, k + 1))
    a[:, :k, :k] = -fn(p, arc(xyz[nb][:, :, None, :], xyz[nb][:, None, :, :]))
    a[:, np.arange(k), np.arange(k)] = 0.0
    a[:, k, :k] = a[:, :k, k] = 1.0
    b = np.ones((probe.size, k + 1))
    b[:, :k] = -fn(p, arc(xyz[nb], xyz[probe][:, None, :]))
    w = np.linalg.solve(a, b[..., None])[..., 0]
    pred = np.einsum("ij,ij->i", w[:, :k], values[nb])
    return float(np.sqrt(np.mean((pred - values[probe]) ** 2)))


def _auto_max_lag(lon, lat, n_closest: int, max_points: int, seed: int) -> float:
    """``_LAG_FACTOR`` × the median distance (degrees) from a point to its ``n_closest``-th neighbour."""
    from scipy.spatial import cKDTree

    xyz = grid.unit_vectors(lat, lon)
    k = min(n_closest + 1, lon.size)
    probe = np.random.default_rng(seed).permutation(lon.size)[:max_points]
    chord, _ = cKDTree(xyz).query(xyz[probe], k=k)
    radius = float(np.degrees(2.0 * np.arcsin(np.clip(np.median(chord[:, -1]) / 2.0, 0.0, 1.0))))
    return float(np.clip(_LAG_FACTOR * radius, 1e-3, 90.0))


def fit_variogram(lon: ArrayLike, lat: ArrayLike, values: ArrayLike, *, model: str | None = None,
                  max_points: int | None = None, seed: int = 0, max_lag: float | None = None,
                  nugget_floor: float | None = None, n_closest: int | None = None) -> dict:
    """Fit one variogram (model, partial sill, range, nugget) to source points, for all tiles to share.

    The empirical semivariogram pairs ``max_points`` seeded anchor points with every point of a 25×
    larger seeded subsample within ``max_lag`` degrees, in 30 equal great-circle lag bins; the model is
    fitted by least squares with Cressie's weights N(h)/γ(h)², which favour the short lags a local
    kriging neighbourhood uses.

    Parameters
    ----------
    lon, lat, values : array_like
        Source points (degrees, any longitude convention) and their values; NaN rows are dropped.
    model : str, optional
        ``"gaussian"``, ``"spherical"`` or ``"exponential"`` (pykrige's models), or ``"auto"``: all three,
        keeping the one with the lowest leave-one-out RMSE (``n_closest`` neighbours, ``max_points``
        seeded test points); default ``kriging.variogram_model``.
    max_points : int, optional
        Anchor points of the subsample; default ``kriging.variogram_sample``.
    seed : int
        Seed of the subsample; the same inputs and seed give the same variogram.
    max_lag : float, optional
        Largest lag fitted, degrees of arc; default ``kriging.variogram_max_lag``; 0 chooses 4 × the
        median distance from a point to its ``n_closest``-th neighbour (the scales the kriging uses).
    nugget_floor : float, optional
        Smallest nugget as a fraction of the sill; default ``kriging.nugget_floor``.
    n_closest : int, optional
        Neighbourhood size the automatic ``max_lag`` refers to; default ``kriging.n_closest``.

    Returns
    -------
    dict
        ``model``; ``psill``, ``nugget`` and ``sill`` (value units²); ``range`` (degrees of arc, pykrige's
        geographic unit) and ``range_km``; ``parameters`` ([psill, range, nugget], pykrige's order);
        ``n_points`` (valid points), ``n_anchors``, ``n_pairs``, ``max_lag``, ``seed``; ``lags`` (degrees),
        ``semivariance`` and ``pairs`` of the empirical variogram; with ``model="auto"`` also ``cv_rmse``
        (leave-one-out RMSE per model, value units).

    Raises
    ------
    KrigingInputError
        Mismatched lengths, all values NaN, fewer than 3 points.
    ConfigError
        An unknown model or a non-positive option.
    """
    lon, lat, values = _clean(lon, lat, values)
    model = _setting("variogram_model", model, str).lower()
    if model != "auto":
        _model_function(model)
    max_points = _setting("variogram_sample", max_points, int)
    max_lag = _setting("variogram_max_lag", max_lag, float)
    floor = _setting("nugget_floor", nugget_floor, float)
    n_closest = _setting("n_closest", n_closest, int)
    if max_points < MIN_POINTS or not 0.0 <= max_lag <= 180.0 or not 0.0 <= floor < 1.0 or n_closest < 2:
        raise ConfigError(f"kriging: variogram_sample={max_points} (≥ {MIN_POINTS}), variogram_max_lag={max_lag} "
                          f"(0–180°), nugget_floor={floor} ([0, 1)), n_closest={n_closest} (≥ 2): a value is out "
                          "of range")
    if max_lag == 0.0:
        max_lag = _auto_max_lag(lon, lat, n_closest, max_points, seed)
    result: dict[str, Any] = {"model": model, "n_points": int(values.size), "max_lag": max_lag, "seed": int(seed)}
    if float(values.var()) == 0.0:
        result.update(model=MODELS[0] if model == "auto" else model, psill=0.0, range=max_lag, nugget=0.0, sill=0.0,
                      n_anchors=0, n_pairs=0, lags=[], semivariance=[], pairs=[])
    else:
        lags, gamma, pairs, n_anchors = _empirical_variogram(lon, lat, values, max_points, max_lag, seed)
        if lags.size < 2:
            raise KrigingInputError(
                f"variogram: only {lags.size} lag bin(s) hold point pairs within {max_lag}° "
                "(points too far apart); raise kriging.variogram_max_lag")
        result.update(n_anchors=int(n_anchors), n_pairs=int(pairs.sum()), lags=[round(float(x), 6) for x in lags],
                      semivariance=[float(x) for x in gamma], pairs=[int(x) for x in pairs])
        candidates = MODELS if model == "auto" else (model,)
        fits = {m: _fit_model(m, lags, gamma, pairs, max_lag, floor) for m in candidates}
        if model == "auto":
            scores = {m: _loo_rmse(lon, lat, values, m, fits[m], n_closest, max_points, seed) for m in candidates}
            model = min(scores, key=scores.__getitem__)
            result["cv_rmse"] = scores
            logger.info("kriging: leave-one-out RMSE by variogram model %s: %s chosen",
                        {m: float(f"{v:.4g}") for m, v in scores.items()}, model)
        psill, rng, nugget = fits[model]
        result.update(model=model, psill=psill, range=rng, nugget=nugget, sill=psill + nugget)
    result["range_km"] = math.radians(result["range"]) * grid.EARTH_RADIUS_KM
    result["parameters"] = [result["psill"], result["range"], result["nugget"]]
    logger.info("kriging: %s variogram psill %.4g, range %.3g° (%.0f km), nugget %.4g from %d points",
                model, result["psill"], result["range"], result["range_km"], result["nugget"], values.size)
    return result


def _variogram_parameters(variogram: dict, nugget_floor: float) -> tuple[str, list[float]]:
    """(model, [psill, range, nugget]) from a :func:`fit_variogram`-style dict; nugget kept ≥ the floor."""
    try:
        model = str(variogram["model"]).lower()
        psill = (float(variogram["psill"]) if "psill" in variogram
                 else float(variogram["sill"]) - float(variogram["nugget"]))
        rng, nugget = float(variogram["range"]), float(variogram["nugget"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"variogram {variogram!r}: expected a dict with model, psill (or sill), range (degrees) "
                          f"and nugget, as fit_variogram returns ({exc})") from exc
    _model_function(model)
    if psill < 0.0 or rng <= 0.0 or nugget < 0.0:
        raise ConfigError(f"variogram psill={psill}, range={rng}, nugget={nugget}: expected psill ≥ 0, range > 0, "
                          "nugget ≥ 0")
    floor = nugget_floor * (psill + nugget)
    if nugget < floor or nugget == 0.0:
        logger.info("kriging: nugget %.4g raised to %.4g (%g × sill; a nugget-free system is ill-conditioned)",
                    nugget, floor, nugget_floor)
        nugget = max(floor, 1e-12 * max(psill, 1e-300))
    return model, [psill, rng, nugget]


@dataclasses.dataclass
class _Sources:
    """Everything a tile task needs; sent to the cluster once per feature."""

    lon: np.ndarray
    lat: np.ndarray
    values: np.ndarray
    model: str
    parameters: list
    n_closest: int
    max_points: int
    backend: str
    grid_lat: np.ndarray
    grid_lon: np.ndarray
    _tree: object = None

    def tree(self):
        from scipy.spatial import cKDTree

        if self._tree is None:
            self._tree = cKDTree(grid.unit_vectors(self.lat, self.lon))
        return self._tree


def _krige_tile(tile, src: _Sources):
    """Krige one tile: ``tile = (i0, i1, j0, j1, mask or None)`` → (i0, j0, values, variance, stats)."""
    import warnings

    from pykrige.ok import OrdinaryKriging

    i0, i1, j0, j1, tile_mask = tile
    rows, cols = np.meshgrid(np.arange(i0, i1), np.arange(j0, j1), indexing="ij")
    wanted = np.ones(rows.shape, dtype=bool) if tile_mask is None else np.asarray(tile_mask, dtype=bool)
    rows, cols = rows[wanted], cols[wanted]
    z = np.full((i1 - i0, j1 - j0), np.nan, dtype=np.float32)
    var = np.full_like(z, np.nan)
    stats = {"systems": 0, "max_points": 0}
    if rows.size == 0:
        return i0, j0, z, var, stats
    clat, clon = src.grid_lat[rows], src.grid_lon[cols]
    k = min(src.n_closest, src.lon.size)
    _, idx = src.tree().query(grid.unit_vectors(clat, clon), k=k)
    idx = idx.reshape(rows.size, k)
    out_z = np.empty(rows.size)
    out_v = np.empty(rows.size)

    def solve(sel):
        used = np.unique(idx[sel])
        if used.size > src.max_points and sel.size > 1:
            # split along the longer side of the cells' index box, so the halves stay compact
            r, c = rows[sel], cols[sel]
            key = r if np.ptp(r) >= np.ptp(c) else c
            order = sel[np.argsort(key, kind="stable")]
            half = order.size // 2
            solve(order[:half])
            solve(order[half:])
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ok = OrdinaryKriging(src.lon[used], src.lat[used], src.values[used], variogram_model=src.model,
                                 variogram_parameters=list(src.parameters), coordinates_type="geographic",
                                 exact_values=False)
            zz, ss = ok.execute("points", clon[sel], clat[sel], backend=src.backend,
                                n_closest_points=min(k, used.size))
        out_z[sel], out_v[sel] = np.asarray(zz), np.asarray(ss)
        stats["systems"] += 1
        stats["max_points"] = max(stats["max_points"], int(used.size))

    solve(np.arange(rows.size))
    z[wanted], var[wanted] = out_z, out_v
    return i0, j0, z, var, stats


def _tiles(n_lat: int, n_lon: int, size: int, mask: np.ndarray | None) -> list:
    tiles = []
    for i0 in range(0, n_lat, size):
        for j0 in range(0, n_lon, size):
            i1, j1 = min(i0 + size, n_lat), min(j0 + size, n_lon)
            part = None if mask is None else mask[i0:i1, j0:j1]
            if part is not None:
                if not part.any():
                    continue
                if part.all():
                    part = None
            tiles.append((i0, i1, j0, j1, part))
    return tiles


def krige_to_grid(lon: ArrayLike, lat: ArrayLike, values: ArrayLike, *, res: float | None = None,
                  client: Client | LazyClient | None = None, tile_degrees: float | None = None,
                  n_closest: int | None = None, variogram: dict | None = None, name: str = "value",
                  progress: bool = True, mask: ArrayLike | xr.DataArray | None = None,
                  variogram_model: str | None = None, nugget_floor: float | None = None,
                  max_points_per_tile: int | None = None, variogram_sample: int | None = None,
                  variogram_max_lag: float | None = None, pykrige_backend: str | None = None,
                  aggregate_dense: bool | None = None, return_variance: bool = False,
                  seed: int = 0) -> xr.DataArray | tuple[xr.DataArray, xr.DataArray]:
    """Ordinary kriging of source points onto the global grid, one Dask task per tile.

    Parameters
    ----------
    lon, lat, values : array_like
        1-D source points (degrees, any longitude convention) and values; NaN rows are dropped (logged).
    res : float, optional
        Target cell size, degrees (default ``ghf.resolution``, 0.5); the grid is
        :func:`seisgrid.ghf.grid.grid_coords`.
    client : distributed.Client, LazyClient or None
        Cluster for the tile tasks; None kriges the tiles in this process, one after the other.
    tile_degrees : float, optional
        Tile side, degrees (``kriging.tile_degrees``); rounded to whole cells.
    n_closest : int, optional
        Source points per cell neighbourhood (``kriging.n_closest``).
    variogram : dict, optional
        Fixed variogram (``model``, ``psill`` or ``sill``, ``range`` in degrees, ``nugget``), e.g. from
        :func:`fit_variogram`; default: fitted here on the (thinned) source points.
    name : str
        Name of the returned DataArray (and of the progress bar).
    progress : bool
        Show a progress bar over the tiles (stderr).
    mask : array_like of bool or xarray.DataArray, optional
        ``(n_lat, n_lon)`` on the target grid, **True where a value is wanted**; other cells are NaN and
        cost nothing (e.g. only the Antarctic cells).
    variogram_model, nugget_floor, max_points_per_tile, variogram_sample, variogram_max_lag, pykrige_backend, \
aggregate_dense
        Override the ``kriging.*`` settings of the same names (see ``seisgrid.yaml``).
    return_variance : bool
        Also return the kriging variance (value units²) as a second DataArray ``{name}_variance``.
    seed : int
        Seed of the variogram's subsample.

    Returns
    -------
    xarray.DataArray or (xarray.DataArray, xarray.DataArray)
        float32 ``(lat, lon)`` values; attrs ``method`` (one line: pykrige version, variogram, neighbourhood,
        tiles), ``variogram_model``, ``variogram_psill``, ``variogram_range_deg``, ``variogram_range_km``,
        ``variogram_nugget``, ``n_closest``, ``tile_degrees``, ``n_tiles``, ``n_source_points``,
        ``aggregated``. With ``return_variance`` also the float32 kriging variance on the same grid.

    Raises
    ------
    KrigingInputError
        Mismatched lengths, all-NaN values, fewer than 3 valid points, a mask of the wrong shape.
    ConfigError
        Invalid options or variogram.
    """
    import pykrige

    t0 = time.perf_counter()
    lon, lat, values = _clean(lon, lat, values)
    grid_lat, grid_lon = grid.grid_coords(res)
    res_deg = float(grid_lat[1] - grid_lat[0]) if grid_lat.size > 1 else 180.0
    tile_deg = _setting("tile_degrees", tile_degrees, float)
    n_closest = _setting("n_closest", n_closest, int)
    max_points = _setting("max_points_per_tile", max_points_per_tile, int)
    floor = _setting("nugget_floor", nugget_floor, float)
    backend = _setting("pykrige_backend", pykrige_backend, str)
    aggregate = _setting("aggregate_dense", aggregate_dense, bool)
    if tile_deg <= 0.0:
        raise ConfigError(f"kriging.tile_degrees={tile_deg}: expected > 0")
    if n_closest < 2:
        raise ConfigError(f"kriging.n_closest={n_closest}: pykrige's moving window needs at least 2 points")
    if max_points < 2 * n_closest:
        raise ConfigError(f"kriging.max_points_per_tile={max_points}: expected ≥ 2 × n_closest ({2 * n_closest})")
    if backend not in ("C", "loop"):
        raise ConfigError(f"kriging.pykrige_backend={backend!r}: expected 'C' or 'loop' (pykrige's moving window "
                          "does not exist in the 'vectorized' backend)")
    shape = (grid_lat.size, grid_lon.size)
    if mask is not None:
        mask = np.asarray(mask.transpose("lat", "lon").values if isinstance(mask, xr.DataArray) else mask, dtype=bool)
        if mask.shape != shape:
            raise KrigingInputError(f"mask: shape {mask.shape}, expected (lat, lon) {shape} of the {res_deg}° grid")

    n_input = values.size
    aggregated = False
    if aggregate:
        i, j = grid.cell_index(lat, lon, res_deg)
        occupied = np.unique(i * shape[1] + j).size
        if n_input / occupied >= 2.0:
            lon, lat, values = _aggregate_to_cells(lon, lat, values, res_deg)
            aggregated = True
            logger.info("kriging %s: %d source points averaged into %d target cells (%.1f per cell)",
                        name, n_input, values.size, n_input / values.size)

    if variogram is None:
        variogram = fit_variogram(lon, lat, values, model=variogram_model, max_points=variogram_sample, seed=seed,
                                  max_lag=variogram_max_lag, nugget_floor=floor, n_closest=n_closest)
    model, params = _variogram_parameters(variogram, floor)
    range_km = math.radians(params[1]) * grid.EARTH_RADIUS_KM
    size = max(1, round(tile_deg / res_deg))
    tiles = _tiles(shape[0], shape[1], size, mask)

    z = np.full(shape, np.nan, dtype=np.float32)
    var = np.full(shape, np.nan, dtype=np.float32)
    stats = {"systems": 0, "max_points": 0}
    if float(np.ptp(values)) == 0.0:
        wanted = np.ones(shape, dtype=bool) if mask is None else mask
        z[wanted], var[wanted] = values[0], 0.0
        how = "constant source: every cell takes its value"
    else:
        src = _Sources(lon, lat, values, model, params, n_closest, max_points, backend, grid_lat, grid_lon)
        resolved = resolve_client(client) if tiles else None  # a LazyClient starts only when there is work
        payload = src if resolved is None else share(resolved, src)
        for i0, j0, tz, tv, st in run_tasks(resolved, _krige_tile, tiles, (payload,), desc=f"kriging {name}",
                                            unit="tile", progress=progress):
            z[i0:i0 + tz.shape[0], j0:j0 + tz.shape[1]] = tz
            var[i0:i0 + tv.shape[0], j0:j0 + tv.shape[1]] = tv
            stats["systems"] += st["systems"]
            stats["max_points"] = max(stats["max_points"], st["max_points"])
        how = (f"ordinary kriging (pykrige {pykrige.__version__}, geographic great-circle distances, backend "
               f"{backend}), variogram {model} psill {params[0]:.4g} range {params[1]:.4g}° ({range_km:.0f} km) "
               f"nugget {params[2]:.4g}, n_closest {n_closest}, tiles {len(tiles)} of {size * res_deg:g}° "
               f"({stats['systems']} systems, at most {stats['max_points']} points)")
    if aggregated:
        how += f"; {n_input} source points first averaged into {values.size} cells"
    seconds = time.perf_counter() - t0
    logger.info("kriging %s: %s; %.1f s", name, how, seconds)

    coords = {"lat": grid_lat, "lon": grid_lon}
    attrs = {"method": how, "variogram_model": model, "variogram_psill": params[0], "variogram_range_deg": params[1],
             "variogram_range_km": range_km, "variogram_nugget": params[2], "n_closest": n_closest,
             "tile_degrees": size * res_deg, "n_tiles": len(tiles), "n_source_points": int(n_input),
             "aggregated": aggregated}
    out = xr.DataArray(z, coords=coords, dims=("lat", "lon"), name=name, attrs=attrs)
    if not return_variance:
        return out
    variance = xr.DataArray(var, coords=coords, dims=("lat", "lon"), name=f"{name}_variance",
                            attrs={"long_name": f"ordinary kriging variance of {name}", "units": "value units squared",
                                   "method": how})
    return out, variance
