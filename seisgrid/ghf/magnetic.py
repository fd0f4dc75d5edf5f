"""The satellite magnetic anomaly ΔF (nT) on the GHF grid, from spherical-harmonic field models.

ΔF ≈ B_lith · B_main / |B_main|: the lithospheric field of a satellite model (LCS-1, degrees 16–185 by
default) projected on the direction of the core main field (IGRF-14 at 2020.0). That is the usual
first-order total-field anomaly, since |B_lith| ≪ |B_main|. It is evaluated on the sphere r = a =
6371.2 km (the models' reference radius; not EMAG2's 4 km altitude, no topography) at the grid's cell
centres, so nothing is kriged or resampled. The shortest half-wavelength LCS-1 resolves is πa/185 ≈ 108 km.

Why chaosmagpy: it is DTU Space's package for this family of models (CHAOS, and LCS-1 by the same group).
It reads the SHC files (:func:`chaosmagpy.data_utils.load_shcfile`) and synthesises the field from the Gauss
coefficients (:func:`chaosmagpy.model_utils.synth_values`). So no spherical harmonics are written by hand
here: no Legendre recursion, Schmidt normalisation, g/h ordering or pole handling of our own to get wrong.
It is imported inside the functions, because its import takes about a second.

Recipe and checks: ``$SEISGRID_DATA/ghf/magnetic_lcs1_olsen2017/README.md``.
"""

from __future__ import annotations

import math
import pathlib
import warnings
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import xarray as xr

from seisgrid import config
from seisgrid.errors import ConfigError, InputFileError
from seisgrid.ghf import grid

if TYPE_CHECKING:
    import os

    from numpy.typing import ArrayLike

REFERENCE_RADIUS_KM = 6371.2  # reference radius a of the SHC models' Gauss coefficients, km
DEFAULT_MODEL = "LCS-1.shc"
DEFAULT_MAIN_FIELD = "IGRF14.shc"
DEFAULT_NMIN = 16  # lowest degree used: below ~16 the lithospheric field cannot be told from the core field
DEFAULT_EPOCH = 2020.0  # decimal year of the main-field direction
MJD2000_2020 = 7305.0  # 2020-01-01 00:00 UTC in modified Julian days since 2000-01-01

LCS1_CITATION = ("LCS-1: Olsen, N., Ravat, D., Finlay, C. C. & Kother, L. K. (2017), LCS-1: a high-resolution global "
                 "model of the lithospheric magnetic field derived from CHAMP and Swarm satellite observations, "
                 "GJI 211, 1461-1477, doi:10.1093/gji/ggx381")
IGRF14_CITATION = ("IGRF-14: IAGA V-MOD, International Geomagnetic Reference Field, 14th generation, "
                   "doi:10.5281/zenodo.14012302")
CITATIONS = {
    "LCS-1.shc": LCS1_CITATION,
    "MF7.shc": ("MF7: crustal field model by S. Maus and co-workers, geomag.us/models/MF7.html "
                "(Maus et al. 2008, G-cubed)"),
    "CHAOS-8.1_static.shc": "CHAOS-8.1 static (lithospheric) part, DTU Space (Finlay et al. 2020, Earth Planets Space)",
    "IGRF14.shc": IGRF14_CITATION,
}
"""Citations of the SHC files in ``magnetic_lcs1_olsen2017`` (file name → citation)."""

# What load_shcfile raises on a damaged file: the usual read errors, NameError (UnboundLocalError: no header
# line at all) and the DeprecationWarning of np.fromstring on a line that is not all numbers (made an error).
_SHC_ERRORS: tuple[type[Exception], ...] = (*grid.READ_ERRORS, NameError, DeprecationWarning)


class SHCModel(NamedTuple):
    """A spherical-harmonic model as :func:`chaosmagpy.data_utils.load_shcfile` returns it.

    Attributes
    ----------
    time : numpy.ndarray
        (N,) snapshot times, modified Julian days since 2000-01-01 (MJD2000).
    coeffs : numpy.ndarray
        (nmax(nmax+2) − (nmin² − 1), N) Schmidt semi-normalised Gauss coefficients in nT at
        :data:`REFERENCE_RADIUS_KM`, degrees nmin … nmax in the order g_n^0, g_n^1, h_n^1, g_n^2 …
    parameters : dict
        ``SHC`` (file name), ``nmin``, ``nmax``, ``N``, ``order``, ``step`` from the header line.
    """

    time: np.ndarray
    coeffs: np.ndarray
    parameters: dict


def n_coefficients(nmin: int, nmax: int) -> int:
    """Number of Gauss coefficients of degrees ``nmin`` … ``nmax``: nmax(nmax+2) − (nmin² − 1)."""
    return nmax * (nmax + 2) - (nmin**2 - 1)


def read_shc(path: str | os.PathLike[str]) -> SHCModel:
    """Read an SHC spherical-harmonic model file (a thin wrapper over :func:`chaosmagpy.data_utils.load_shcfile`).

    The format: ``#`` comment lines, a header line ``nmin nmax N order step``, a line of N epochs (decimal
    years), then one row ``n m value…`` per coefficient (``m < 0`` rows hold h_n^|m|).

    Parameters
    ----------
    path : str or path-like
        The ``.shc`` file.

    Returns
    -------
    SHCModel
        ``(time, coeffs, parameters)``, unpacked like the tuple of ``load_shcfile``.

    Raises
    ------
    InputFileError
        The file is missing, or malformed: a line that is not numbers, a header without nmin, nmax and N,
        a coefficient count other than nmax(nmax+2) − (nmin² − 1) per snapshot (a truncated file), or
        non-finite values. The message names the file and the reason.
    """
    from chaosmagpy.data_utils import load_shcfile

    path = pathlib.Path(path)
    if not path.is_file():
        raise InputFileError(path, "file not found; expected a spherical-harmonic model in SHC format "
                                   "(is SEISGRID_DATA or --data right?)")
    try:
        with warnings.catch_warnings():
            # load_shcfile parses lines with np.fromstring, which only warns (DeprecationWarning) on a line that
            # is not all numbers and keeps the numbers before the bad token: make that an error.
            warnings.simplefilter("error", DeprecationWarning)
            t, coeffs, params = load_shcfile(str(path))
    except _SHC_ERRORS as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, NameError):
            reason = "no header line 'nmin nmax N order step'"
        raise InputFileError(path, f"cannot read as an SHC model ({type(exc).__name__}: {reason}); "
                                   "a truncated file or a row of the wrong length?") from None
    missing = [key for key in ("nmin", "nmax", "N") if key not in params]
    if missing:
        raise InputFileError(path, f"header line lacks {', '.join(missing)} (expected 'nmin nmax N order step')")
    nmin, nmax, n = int(params["nmin"]), int(params["nmax"]), int(params["N"])
    if not 1 <= nmin <= nmax or n < 1:
        raise InputFileError(path, f"header nmin {nmin}, nmax {nmax}, N {n}: expected 1 <= nmin <= nmax and N >= 1")
    expected = n_coefficients(nmin, nmax)
    if len(t) != n or coeffs.shape != (expected, n):
        raise InputFileError(path, f"{coeffs.shape[0]} coefficient rows of {coeffs.shape[1]} snapshot(s) and "
                                   f"{len(t)} epoch(s); degrees {nmin}-{nmax} need nmax(nmax+2) - (nmin²-1) = "
                                   f"{expected} rows of N = {n} values (a truncated file?)")
    if not (np.isfinite(coeffs).all() and np.isfinite(t).all()):
        raise InputFileError(path, "non-finite coefficient or epoch")
    return SHCModel(np.asarray(t, dtype=float), np.asarray(coeffs, dtype=float), dict(params))


def _model(shc: str | os.PathLike[str] | SHCModel) -> SHCModel:
    return shc if isinstance(shc, SHCModel) else read_shc(shc)


def coefficients_at(model: SHCModel, epoch_mjd2000: float) -> tuple[np.ndarray, str]:
    """The model's coefficients at ``epoch_mjd2000``, and how they were obtained.

    A one-snapshot (static) model gives its snapshot whatever the epoch. Otherwise the coefficients are
    interpolated linearly between the two snapshots that bracket the epoch. IGRF is defined that way,
    piecewise linear between its 5-year snapshots, and at a snapshot's own epoch (2020.0 = MJD2000 7305)
    the result is that snapshot exactly.

    Raises
    ------
    ValueError
        The epoch lies outside the model's span of snapshots.
    """
    t, c = model.time, model.coeffs
    if len(t) == 1:
        return c[:, 0].copy(), "static model"
    if not t[0] <= epoch_mjd2000 <= t[-1]:
        name = model.parameters.get("SHC", "the model")
        raise ValueError(f"epoch MJD2000 {epoch_mjd2000:g} outside the span of {name} (MJD2000 {t[0]:g} to {t[-1]:g})")
    j = int(np.clip(np.searchsorted(t, epoch_mjd2000, side="right") - 1, 0, len(t) - 2))
    w = (epoch_mjd2000 - t[j]) / (t[j + 1] - t[j])
    if w == 0.0:
        return c[:, j].copy(), f"snapshot at MJD2000 {t[j]:g}"
    return (1.0 - w) * c[:, j] + w * c[:, j + 1], f"linear between the snapshots at MJD2000 {t[j]:g} and {t[j + 1]:g}"


def scalar_anomaly(lat: ArrayLike, lon: ArrayLike, lithosphere_shc: str | os.PathLike[str] | SHCModel,
                   main_field_shc: str | os.PathLike[str] | SHCModel, *, nmin: int = DEFAULT_NMIN,
                   epoch_mjd2000: float = MJD2000_2020, radius_km: float = REFERENCE_RADIUS_KM,
                   points: bool = False) -> np.ndarray:
    """Scalar lithospheric anomaly ΔF = B_lith · B_main / |B_main| in nT.

    Both fields come from :func:`chaosmagpy.model_utils.synth_values` (internal sources, geocentric
    spherical coordinates) at the same points. The main field is taken at ``epoch_mjd2000`` by
    :func:`coefficients_at`: linear interpolation between the two snapshots that bracket it (at the
    default 2020.0, the IGRF-14 2020 snapshot itself).

    Parameters
    ----------
    lat, lon : array_like
        Geocentric latitude and longitude, degrees. By default 1-D axes of a grid (the cell centres of
        :func:`seisgrid.ghf.grid.grid_coords`); with ``points=True``, point coordinates that broadcast.
    lithosphere_shc, main_field_shc : path or SHCModel
        The lithospheric model (e.g. ``LCS-1.shc``) and the main-field model (e.g. ``IGRF14.shc``), as
        files or as :func:`read_shc` results.
    nmin : int
        Lowest degree of the lithospheric model to use; degrees below it are dropped. It cannot be below
        the model's own lowest degree.
    epoch_mjd2000 : float
        Epoch of the main-field direction (and of a time-dependent lithospheric model), MJD2000.
    radius_km : float
        Radius of the evaluation sphere, km; default the models' reference radius a = 6371.2 km.
    points : bool
        False: ``lat`` × ``lon`` grid (chaosmagpy's ``grid=True``). True: one value per point.

    Returns
    -------
    numpy.ndarray
        ΔF in nT, shape (len(lat), len(lon)), or the broadcast shape of ``lat`` and ``lon`` with ``points``.

    Raises
    ------
    InputFileError
        A model file is missing or malformed.
    ValueError
        ``nmin`` outside the model's degrees, an epoch outside the main field's span, or a latitude
        outside ±90°.
    """
    from chaosmagpy.config_utils import basicConfig
    from chaosmagpy.model_utils import synth_values

    lith, main = _model(lithosphere_shc), _model(main_field_shc)
    n0, nmax = int(lith.parameters["nmin"]), int(lith.parameters["nmax"])
    nmin = int(nmin)
    if not n0 <= nmin <= nmax:
        raise ValueError(f"nmin {nmin}: {lith.parameters.get('SHC', 'the lithospheric model')} has degrees "
                         f"{n0}-{nmax}")
    c_lith, _ = coefficients_at(lith, epoch_mjd2000)
    c_lith = c_lith[nmin**2 - n0**2:]  # degrees n0 … nmin-1 hold nmin² − n0² coefficients
    c_main, _ = coefficients_at(main, epoch_mjd2000)
    theta = 90.0 - np.asarray(lat, dtype=float)
    phi = np.asarray(lon, dtype=float)
    # synth_values scales radii by chaosmagpy's reference radius (params.r_surf, 6371.2 km unless changed)
    r = float(radius_km) / REFERENCE_RADIUS_KM * float(basicConfig["params.r_surf"])
    b_r, b_t, b_p = synth_values(c_lith, r, theta, phi, nmin=nmin, nmax=nmax, grid=not points)
    m_r, m_t, m_p = synth_values(c_main, r, theta, phi, nmin=int(main.parameters["nmin"]),
                                 nmax=int(main.parameters["nmax"]), grid=not points)
    return (b_r * m_r + b_t * m_t + b_p * m_p) / np.sqrt(m_r**2 + m_t**2 + m_p**2)


def magnetic_anomaly_grid(folder: str | os.PathLike[str], res: float | None = None, *, model: str | None = None,
                          main_field: str | None = None, nmin: int | None = None,
                          epoch: float | None = None) -> xr.DataArray:
    """The scalar magnetic anomaly ΔF (nT) at the cell centres of the global grid.

    Parameters
    ----------
    folder : path
        Folder with the SHC files (``<data>/ghf/magnetic_lcs1_olsen2017``).
    res : float, optional
        Grid spacing, degrees; default ``seisgrid.ghf.resolution`` (0.5).
    model : str, optional
        Lithospheric model file in ``folder`` (or an absolute path); default
        ``seisgrid.features.magnetic.model`` (``LCS-1.shc``).
    main_field : str, optional
        Main-field model file giving the field direction; default ``seisgrid.features.magnetic.main_field``
        (``IGRF14.shc``).
    nmin : int, optional
        Lowest degree of the lithospheric model used; default ``seisgrid.features.magnetic.nmin`` (16).
    epoch : float, optional
        Decimal year of the main-field direction; default ``seisgrid.features.magnetic.epoch`` (2020.0).

    Returns
    -------
    xarray.DataArray
        ``magnetic_anomaly`` (float32) on :func:`seisgrid.ghf.grid.grid_coords`, with attributes ``source``,
        ``units`` (nT), ``long_name``, ``method``, ``resolution_km`` (πa/nmax), ``degrees``,
        ``n_coefficients``, ``epoch``, ``source_file`` and ``main_field_file``.

    Raises
    ------
    InputFileError
        A model file is missing or malformed.
    ConfigError
        ``nmin`` outside the model's degrees or an epoch outside the main field's span.
    """
    import chaosmagpy
    from chaosmagpy.data_utils import dyear_to_mjd

    folder = pathlib.Path(folder)
    model = str(config.get("features.magnetic.model", DEFAULT_MODEL, override=model))
    main_field = str(config.get("features.magnetic.main_field", DEFAULT_MAIN_FIELD, override=main_field))
    nmin = int(config.get("features.magnetic.nmin", DEFAULT_NMIN, override=nmin))
    epoch = float(config.get("features.magnetic.epoch", DEFAULT_EPOCH, override=epoch))
    lith, main = read_shc(folder / model), read_shc(folder / main_field)
    mjd = float(dyear_to_mjd(epoch))
    lat, lon = grid.grid_coords(res)
    try:
        _, how = coefficients_at(main, mjd)
        values = scalar_anomaly(lat, lon, lith, main, nmin=nmin, epoch_mjd2000=mjd, radius_km=REFERENCE_RADIUS_KM)
    except ValueError as exc:
        raise ConfigError(f"features.magnetic: {exc}") from None
    nmax = int(lith.parameters["nmax"])
    res_km = math.pi * REFERENCE_RADIUS_KM / nmax
    model_name, main_name = pathlib.Path(model).name, pathlib.Path(main_field).name
    source = CITATIONS.get(model_name, f"{model_name} (SHC model)")
    direction = CITATIONS.get(main_name, f"{main_name} (SHC model)")
    attrs = {
        "source": f"{source}; main-field direction from {direction}",
        "units": "nT",
        "long_name": "scalar lithospheric magnetic anomaly (total-field ΔF)",
        "method": (f"ΔF = B_lith·B_main/|B_main|: the lithospheric field of {model_name}, degrees {nmin}-{nmax} "
                   f"(Gauss coefficients at a = {REFERENCE_RADIUS_KM} km), projected on the direction of the "
                   f"{main_name} main field at {epoch:.2f} (MJD2000 {mjd:g}; {how}); both synthesised with "
                   f"chaosmagpy {chaosmagpy.__version__} synth_values at the cell centres on the sphere "
                   f"r = {REFERENCE_RADIUS_KM} km (not EMAG2's 4 km altitude; no topography); not kriged or "
                   f"resampled; shortest half-wavelength πa/nmax ≈ {res_km:.0f} km"),
        "resolution_km": round(res_km, 1),
        "degrees": f"{nmin}-{nmax}",
        "n_coefficients": n_coefficients(nmin, nmax),
        "epoch": epoch,
        "source_file": model_name,
        "main_field_file": main_name,
    }
    return xr.DataArray(values.astype(np.float32), coords={"lat": lat, "lon": lon}, dims=("lat", "lon"),
                        name="magnetic_anomaly", attrs=attrs)
