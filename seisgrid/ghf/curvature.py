"""Mean curvature of a field over the sphere, and WGS84 normal gravity: the maths of the gravity-curvature feature.

:func:`normal_gravity` turns the EIGEN-6C4 gravity magnitude into the gravity disturbance;
:func:`mean_curvature_sphere` (local quadratic fits on the tangent plane) gives its mean curvature on the
(lat, lon) grid, and :func:`gravity_mean_curvature` wraps it for a grid DataArray. :func:`mean_curvature`
is the same formula on a flat regular grid with finite differences (tests, analytic checks). Used by
:mod:`seisgrid.ghf.features`, which re-exports these names.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from seisgrid.ghf import grid

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

# WGS84 constants (NIMA TR8350.2, 3rd ed., 2000, tables 3.1-3.4)
WGS84_A = 6378137.0  # semi-major axis, m
WGS84_F = 1.0 / 298.257223563  # flattening
WGS84_GAMMA_E = 9.7803253359  # normal gravity at the equator, m/s²
WGS84_K = 0.00193185265241  # Somigliana constant k = (b γp − a γe) / (a γe)
WGS84_E2 = 0.00669437999013  # first eccentricity squared
WGS84_M = 0.00344978650684  # ω² a² b / GM


def normal_gravity(lat: ArrayLike, height_m: ArrayLike = 0.0) -> np.ndarray:
    """WGS84 normal gravity in mGal at geodetic latitude ``lat`` (degrees) and ellipsoidal height ``height_m``.

    Somigliana's closed formula γ0 = γe (1 + k sin²φ) / √(1 − e² sin²φ) on the ellipsoid and the
    second-order height expansion γh = γ0 [1 − 2/a (1 + f + m − 2 f sin²φ) h + 3 h²/a²]
    (NIMA TR8350.2, 3rd ed. 2000, eqs. 4-1 and 4-3; Hofmann-Wellenhof & Moritz 2006, eq. 2-215).
    """
    s2 = np.sin(np.radians(np.asarray(lat, dtype=float))) ** 2
    h = np.asarray(height_m, dtype=float)
    gamma0 = WGS84_GAMMA_E * (1.0 + WGS84_K * s2) / np.sqrt(1.0 - WGS84_E2 * s2)
    factor = 1.0 - 2.0 / WGS84_A * (1.0 + WGS84_F + WGS84_M - 2.0 * WGS84_F * s2) * h + 3.0 * h**2 / WGS84_A**2
    return gamma0 * factor * 1e5


def _mean_curvature_formula(fx, fy, fxx, fxy, fyy) -> np.ndarray:
    q = 1.0 + fx**2 + fy**2
    return ((1.0 + fx**2) * fyy - 2.0 * fx * fy * fxy + (1.0 + fy**2) * fxx) / (2.0 * q**1.5)


def _d1(a: np.ndarray, h, axis: int, periodic: bool) -> np.ndarray:
    if periodic:
        return (np.roll(a, -1, axis=axis) - np.roll(a, 1, axis=axis)) / (2.0 * h)
    return np.gradient(a, axis=axis, edge_order=2) / h


def _d2(a: np.ndarray, h, axis: int, periodic: bool) -> np.ndarray:
    if periodic:
        return (np.roll(a, -1, axis=axis) - 2.0 * a + np.roll(a, 1, axis=axis)) / h**2
    a = np.moveaxis(a, axis, 0)
    out = np.empty_like(a)
    out[1:-1] = a[2:] - 2.0 * a[1:-1] + a[:-2]
    if a.shape[0] >= 4:  # second-order one-sided stencils at the ends
        out[0] = 2.0 * a[0] - 5.0 * a[1] + 4.0 * a[2] - a[3]
        out[-1] = 2.0 * a[-1] - 5.0 * a[-2] + 4.0 * a[-3] - a[-4]
    else:
        out[0], out[-1] = out[1], out[-2]
    return np.moveaxis(out, 0, axis) / h**2


def mean_curvature(f: ArrayLike, dx: ArrayLike, dy: float, *, periodic_x: bool = False) -> np.ndarray:
    """Mean curvature of the surface z = f(x, y) sampled on a regular (y, x) grid.

    H = ((1 + fx²) fyy − 2 fx fy fxy + (1 + fy²) fxx) / (2 (1 + fx² + fy²)^{3/2}), with second-order
    finite differences. H has units 1/length when f, x and y share a length unit; H > 0 where the surface
    is concave up (troughs).

    Parameters
    ----------
    f : array (ny, nx)
    dx : float or array (ny,)
        Spacing along x (per row when an array).
    dy : float
        Spacing along y.
    periodic_x : bool
        x wraps around (global longitude).
    """
    f = np.asarray(f, dtype=float)
    dx = np.asarray(dx, dtype=float)
    dx = dx[:, None] if dx.ndim == 1 else dx
    fx = _d1(f, dx, 1, periodic_x)
    fy = _d1(f, dy, 0, False)
    fxx = _d2(f, dx, 1, periodic_x)
    fyy = _d2(f, dy, 0, False)
    fxy = _d1(fx, dy, 0, False)
    return _mean_curvature_formula(fx, fy, fxx, fxy, fyy)


def mean_curvature_sphere(f: ArrayLike, lat: ArrayLike, lon: ArrayLike, *, radius_km: float = grid.EARTH_RADIUS_KM,
                          neighbourhood: float = 1.5, chunk: int = 50000) -> np.ndarray:
    """Mean curvature of a field f(lat, lon) over the sphere, as a height over the local tangent plane.

    At each node a quadratic f ≈ c0 + c1 x + c2 y + c3 x² + c4 xy + c5 y² is fitted by least squares to
    the nodes within ``neighbourhood`` × the north-south node spacing (great circle), with x (east) and y
    (north) in km on the node's tangent plane; then fx = c1, fy = c2, fxx = 2 c3, fxy = c4, fyy = 2 c5 go
    into the formula of :func:`mean_curvature`. On a regular grid away from the poles that is the 3 × 3
    stencil; towards the poles the neighbourhood keeps its size in km, so the shrinking east-west spacing
    neither amplifies noise nor needs metric corrections (second derivatives in tangent-plane
    coordinates are the covariant ones at the centre). With f in mGal read as km the result is in km⁻¹.

    Parameters
    ----------
    f : array (n_lat, n_lon)
        Values on ascending, evenly spaced ``lat`` and ``lon`` (degrees); NaN nodes are left out of the
        fits, and nodes with fewer than 6 valid neighbours get NaN.
    lat, lon : array
        Node coordinates, degrees.
    radius_km : float
        Radius of the sphere the field lives on.
    neighbourhood : float
        Fit radius in north-south node spacings (1.5 includes the diagonal neighbours of a regular grid).
    chunk : int
        Nodes fitted per batch (bounds memory).
    """
    from scipy.spatial import cKDTree

    f = np.asarray(f, dtype=float)
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    la2, lo2 = np.meshgrid(lat, lon, indexing="ij")
    phi, lam = np.radians(la2.ravel()), np.radians(lo2.ravel())
    xyz = grid.unit_vectors(la2.ravel(), lo2.ravel())
    values = f.ravel()
    valid = np.isfinite(values)
    r_km = neighbourhood * math.radians(abs(lat[1] - lat[0])) * radius_km
    chord = 2.0 * math.sin(r_km / (2.0 * radius_km))
    tree = cKDTree(xyz)
    east = np.stack([-np.sin(lam), np.cos(lam), np.zeros_like(lam)], axis=1)
    north = np.stack([-np.sin(phi) * np.cos(lam), -np.sin(phi) * np.sin(lam), np.cos(phi)], axis=1)
    coef = np.full((values.size, 6), np.nan)
    upper = np.triu_indices(6)
    for c0 in range(0, values.size, chunk):
        c1 = min(c0 + chunk, values.size)
        hits = tree.query_ball_point(xyz[c0:c1], chord, return_sorted=False)
        rows = np.repeat(np.arange(c1 - c0), [len(h) for h in hits])
        cols = np.concatenate([np.asarray(h, dtype=np.int64) for h in hits])
        keep = valid[cols]
        rows, cols = rows[keep], cols[keep]
        # tangent-plane coordinates scaled by the fit radius, for a well-conditioned 6 × 6 system
        u = (xyz[cols] * east[rows + c0]).sum(axis=1) * (radius_km / r_km)
        w = (xyz[cols] * north[rows + c0]).sum(axis=1) * (radius_km / r_km)
        design = np.stack([np.ones_like(u), u, w, u * u, u * w, w * w], axis=1)
        n = c1 - c0
        ata = np.zeros((n, 6, 6))
        for i, j in zip(*upper, strict=True):
            ata[:, i, j] = ata[:, j, i] = np.bincount(rows, weights=design[:, i] * design[:, j], minlength=n)
        atb = np.stack([np.bincount(rows, weights=design[:, i] * values[cols], minlength=n) for i in range(6)], axis=1)
        counts = np.bincount(rows, minlength=n)
        solved = np.einsum("nij,nj->ni", np.linalg.pinv(ata), atb)
        solved[(counts < 6) | ~valid[c0:c1]] = np.nan
        coef[c0:c1] = solved
    fx, fy = coef[:, 1] / r_km, coef[:, 2] / r_km
    fxx, fxy, fyy = 2.0 * coef[:, 3] / r_km**2, coef[:, 4] / r_km**2, 2.0 * coef[:, 5] / r_km**2
    return _mean_curvature_formula(fx, fy, fxx, fxy, fyy).reshape(f.shape)


def gravity_mean_curvature(disturbance: xr.DataArray, height_m: float = 0.0) -> xr.DataArray:
    """Mean curvature (km⁻¹) of a gravity disturbance (mGal) on the (lat, lon) grid, at the grid's spacing.

    :func:`mean_curvature_sphere` on a sphere of radius R + h, the disturbance in mGal read as a height in
    km; H > 0 over gravity lows (troughs), H < 0 over highs.
    """
    da = disturbance.transpose("lat", "lon")
    h = mean_curvature_sphere(da.values, da["lat"].values, da["lon"].values,
                              radius_km=grid.EARTH_RADIUS_KM + height_m / 1e3)
    return xr.DataArray(h.astype(np.float32), coords=da.coords, dims=("lat", "lon"), name="gravity_mean_curvature")
