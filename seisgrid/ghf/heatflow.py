"""Heat-flow compilation: IHFC 2024 + NGHF + Antarctic point databases → filtered points → 0.5° grid.

The recipe follows Liu et al. (2026) (``REFERENCE.md`` section B) where it can, and says where it cannot.

1. **Read** each source (:func:`read_ihfc`, :func:`read_nghf`, :func:`read_antarctic`) into one table with
   columns ``source, lat, lon, q, quality, weight, marine, row, file, id``:

   * **IHFC Global Heat Flow Database, release 2024** (zip holding one CSV, UTF-8 with a byte-order
     mark). The value is ``q`` (observed heat flow), not ``qc`` (corrected): NGHF and the Antarctic DB
     report observed values, so cross-source duplicates match (NGHF points agree with ``q`` slightly more
     often than with ``qc``), ``qc`` corrections (topography, palaeoclimate, …) are applied to only ~17 %
     of the rows and unevenly, and the study's counts (and the data README's) use ``q``
     (``seisgrid.heatflow.ihfc_value`` switches to ``qc``). ``marine`` comes from the ``Domain`` field:
     a Domain not starting with "continental" (marine) is marine; lakes and rivers count as continental;
     a blank Domain falls back to ``environment`` (onshore/offshore), and to the land mask when that is
     blank too. ``quality`` is the U-score (the first two characters of ``Quality_Code``).
   * **NGHF (Lucazeau 2019)** as the four nested subsets ``NGHF_ra`` (class A), ``_rab`` (A+B), ``_rabc``,
     ``_rabcd``. A point's class is the first subset it appears in. Points are matched between files on
     (lon, lat, q) *with multiplicity*: the k-th copy of a point in ``_rab`` is class A when ``_ra`` holds
     at least k copies, else B (the files hold a few hundred exact repeats). The files have no
     environment field: ``marine`` is NA.
   * **Antarctic GHF database V004 (Burton-Johnson et al. 2020)**. ``quality`` is ``DataQuality`` (letter =
     kind of estimate, digit 1 = least … 3 = most reliable). The DB has no environment field but a
     station elevation: where it is given, a negative elevation (sea floor) is marine and a positive one
     is land; otherwise ``marine`` is NA (the S class is *not* taken as marine: Lake Whillans is S1).

   ``row`` is the 1-based record number in the file with the header as row 1 — the line number when no
   field holds a line break (pandas counts the same way in its messages; the IHFC CSV has ~170 quoted
   fields with line breaks, so for IHFC rows the ``id`` (``ID``) is the better handle).
2. **Missing/malformed**: rows with a missing or non-numeric latitude, longitude or heat flow, coordinates
   outside ±90°/−180…360°, or more fields than the header are *rejected*: each is listed with file, row and
   reason, counted per reason in the report, and the good rows beside it are processed.
3. **Marine**: rows with ``marine`` true are removed; where it is NA, :func:`seisgrid.ghf.grid.is_land`
   (GLOBE 1-km mask, Antarctic grounded ice is land) decides. 9–16 % of NGHF points fall on ocean pixels.
4. **Cross-source duplicates**: the same measurement in two databases (NGHF is largely contained in IHFC
   2024: ~90 % of its land points have an IHFC point within 1 km). Two points from *different* sources
   are a pair when they lie within ``duplicate_km`` (1 km; chord-distance KD-tree on
   :func:`~seisgrid.ghf.grid.unit_vectors`) and their values differ by at most
   ``max(duplicate_dq, duplicate_rel · max(q1, q2))`` (2 mW m⁻², 5 %). Pairs are matched one-to-one per pair
   of sources, closest values first (so three IHFC children at one site pair with three NGHF copies, not
   all with one), and of each matched pair the row with the higher quality weight is kept (ties: the
   source listed first in ``sources``, IHFC before NGHF before the Antarctic DB). Repeats *within* one
   source (IHFC children of one site, NGHF repeats) are kept: within a source they cannot be told apart
   from separate measurements at one site.
5. **IQR rule** (the study's): rows outside ``[Q1 − 1.15·IQR, Q3 + 1.25·IQR]`` are removed, Q1 and Q3 being
   quartiles (unweighted, linear interpolation). The study does not say over which population. The default
   (``iqr_scope: cell``) applies the rule within each grid cell (local outliers: a value far from the other
   measurements of its cell). Pooling all points (``iqr_scope: global``) puts the fences at 8.75 and
   127.75 mW m⁻² on the real data (Q1 49, Q3 84): every value above 128 would go, the study's separate
   0–200 mW m⁻² bound would never act, and the cells come out at 60.6 ± 20.5 mW m⁻² against the study's
   63.7 ± 25.3; per cell they are 62.5 ± 24.7. So the study's own figures point to a local rule.
6. **Bound**: rows outside ``0 < q ≤ 200`` mW m⁻² are removed (after the IQR rule this only removes zero
   and negative values when Q1 − 1.15·IQR is negative).
7. **Weights**: every row carries a quality weight from its source's own code (``seisgrid.heatflow.*``):

   ==========  ==============================================  ==========================
   source      code                                            weight
   ==========  ==============================================  ==========================
   IHFC        U-score U1 / U2 / U3 / U4                       1.0 / 0.75 / 0.5 / 0.25
   NGHF        class A / B / C / D                             1.0 / 0.75 / 0.5 / 0.25
   Antarctic   DataQuality digit 3 / 2 / 1                     1.0 / 0.625 / 0.25
   any         unassessed (IHFC ``Ux``, blank DataQuality)     ``unassessed_weight`` 0.25
   ==========  ==============================================  ==========================

   Four-level schemes are spread linearly over 1 … 0.25, the three-level one over the same range. The
   study kept "only entries with quality assessments"; in the 2024 IHFC release 87 % of the rows (and
   89 % of the continental ones) are not assessed (``Ux``), so dropping them would throw away most of the
   data. They are kept with the weight of the lowest assessed class: they fill cells no assessed
   measurement covers, and where assessed ones exist those dominate the cell mean. Setting
   ``unassessed_weight: 0`` reproduces the study's rule (zero-weight rows are removed at this step).
   Codes not in a mapping (none in the real data) are weighted as unassessed and logged.
8. **Gridding** (:func:`grid_heatflow`): per 0.5° cell the quality-weighted mean ``Σ w q / Σ w``, the number
   of points and ``Σ w``.

Measured on the real data (defaults; rows after each step): read 137,743 (IHFC 91,182, NGHF 46,113 distinct
points of the four subsets, Antarctic 448) → missing/malformed 137,740 (3 Antarctic rows rejected) →
marine 96,079 → duplicates 62,506 (33,569 IHFC/NGHF pairs) → IQR (per cell) 58,180 → bounds 56,110;
9,309 cells, 62.5 ± 24.7 mW m⁻² (sample sd over cells). Study: ~10,000 cells, 63.7 ± 25.3. With
``iqr_scope: global``: IQR 56,489; 9,191 cells, 60.6 ± 20.5.

:func:`build_heatflow` writes the grid to a Zarr store (root group: ``heatflow``, ``heatflow_count``,
``heatflow_weight`` on the ``lat``/``lon`` grid) and the accepted points to its ``points`` group (dimension
``point``: ``lat``, ``lon``, ``q``, ``weight``, ``source`` as int8 codes named by the ``flag_meanings``
attribute), so ``xarray.open_zarr(out)`` gives the grid and ``xarray.open_zarr(out, group="points")`` the
points the grid was made from.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import pathlib
import re
import warnings
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from seisgrid import config, storage
from seisgrid.errors import ConfigError, InputFileError
from seisgrid.ghf import grid

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Sequence

    from numpy.typing import ArrayLike

logger = logging.getLogger("seisgrid")

SOURCES = ("ihfc", "nghf", "antarctic")

#: Default location of each source below the GHF data folder (``config.data_dir() / "ghf"``).
SOURCE_PATHS = {
    "ihfc": "ihfc_ghfdb_2024/IHFC_2024_GHFDB.zip",
    "nghf": "nghf_lucazeau2019_via_afq",
    "antarctic": "antarctic_ghf_db_burton_johnson2020/ANT_GHF_DB_V004.csv",
}

SOURCE_CITATIONS = {
    "ihfc": "IHFC Global Heat Flow Database Release 2024 (doi:10.5880/fidgeo.2024.014)",
    "nghf": "NGHF, Lucazeau 2019, G-cubed 20, 4001 (doi:10.1029/2019GC008389), A-D subsets via AFQ",
    "antarctic": "Antarctic GHF DB V004, Burton-Johnson et al. 2020, The Cryosphere 14, 3843 "
                 "(doi:10.5194/tc-14-3843-2020)",
}

#: The study's figures (Liu et al. 2026) for the gridded target.
REFERENCE = {"cells": 10000, "mean": 63.7, "sd": 25.3,
             "source": "Liu et al. 2026, The Cryosphere 20, 1543: ~10,000 0.5° cells, 63.7 ± 25.3 mW m-2"}

#: NGHF subset files, in class order: a point's class is the first file it appears in.
NGHF_FILES = (("A", "NGHF_ra"), ("B", "NGHF_rab"), ("C", "NGHF_rabc"), ("D", "NGHF_rabcd"))

COLUMNS = ["source", "lat", "lon", "q", "quality", "weight", "marine", "row", "file", "id"]
REJECTED_COLUMNS = ["source", "file", "row", "reason", "detail"]

_EXAMPLES_PER_REASON = 3
_SKIP_RE = re.compile(r"Skipping line (\d+): expected (\d+) fields, saw (\d+)")


# ----------------------------------------------------------------------------------------------- settings
def _setting(key: str, override=None):
    value = config.get(f"heatflow.{key}", override=override)
    if value is None:
        raise ConfigError(f"seisgrid.heatflow.{key} is not set (see seisgrid/seisgrid.yaml)")
    return value


def _weight_map(key: str, override=None) -> dict[str, float]:
    mapping = _setting(key, override)
    if not isinstance(mapping, dict):
        raise ConfigError(f"seisgrid.heatflow.{key}: expected a mapping code → weight, got {mapping!r}")
    out = {}
    for code, w in mapping.items():
        w = float(w)
        if not 0.0 <= w <= 1.0:
            raise ConfigError(f"seisgrid.heatflow.{key}: weight {w} of {code!r} is outside [0, 1]")
        out[str(code).strip()] = w
    return out


def _unassessed(override=None) -> float:
    w = float(_setting("unassessed_weight", override))
    if not 0.0 <= w <= 1.0:
        raise ConfigError(f"seisgrid.heatflow.unassessed_weight: {w} is outside [0, 1]")
    return w


def _assign_weights(codes: pd.Series, mapping: dict, unassessed: float, source: str,
                    unassessed_codes=("",)) -> np.ndarray:
    """Weights of ``codes`` from ``mapping``; unassessed and unknown codes get ``unassessed`` (unknown: logged)."""
    weight = codes.map(mapping).astype(float)
    missing = weight.isna()
    unknown = missing & ~codes.isin(list(unassessed_codes))
    if unknown.any():
        counts = codes[unknown].value_counts().head(5).to_dict()
        logger.warning("%s: %d rows with quality codes not in the weight mapping %s (e.g. %s); weighted as "
                       "unassessed (%g)", source, int(unknown.sum()), sorted(mapping), counts, unassessed)
    return weight.fillna(unassessed).to_numpy()


# ------------------------------------------------------------------------------------------------ parsing
def _read_text_table(handle, name: str, sep: str) -> tuple[pd.DataFrame, np.ndarray, list[dict]]:
    """Every field as text, the row number of every record, and the records with too many fields.

    ``row`` numbers count the header as row 1 (pandas' own numbering in its bad-line messages, which counts
    records, not physical lines). All columns are parsed: with ``usecols`` pandas would accept records with
    too many fields silently. Records with too few fields are padded with ``""`` by pandas, so they cannot be
    told from empty fields: they are rejected by the missing-value checks when a needed field is absent.
    Text such as "NA" stays text (and is rejected as non-numeric, showing the value).

    The header is read as a record like the others (``header=None``): with ``header=0`` pandas takes a first
    data record with one field more than the header for a row label and shifts every column of every
    record by one, silently. Tab-separated files (NGHF: numbers only) are read without quoting, so a stray
    ``"`` is part of its field (rejected as non-numeric), not the start of a quoted field that swallows the
    lines after it.
    """
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = pd.read_csv(handle, sep=sep, dtype=str, keep_default_na=False, on_bad_lines="warn",
                                encoding="utf-8-sig", skip_blank_lines=False, header=None, quoting=quoting)
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as exc:
            raise InputFileError(name, f"cannot be read as a table ({exc})") from exc
    frame = frame.iloc[1:].set_axis(_unique_names(frame.iloc[0]), axis=1).reset_index(drop=True)
    bad: list[dict[str, Any]] = []
    for w in caught:
        for m in _SKIP_RE.finditer(str(w.message)):
            bad.append({"row": int(m.group(1)),
                        "detail": f"expected {m.group(2)} fields, saw {m.group(3)}"})
        if not _SKIP_RE.search(str(w.message)):
            logger.warning("%s: %s", name, w.message)
    skipped = np.array(sorted(b["row"] for b in bad), dtype=np.int64)
    total = len(frame) + len(skipped)
    rows = np.setdiff1d(np.arange(2, total + 2, dtype=np.int64), skipped)
    return frame, rows, bad


def _unique_names(header: pd.Series) -> list[str]:
    """Column names from a header record; repeats get ``.1``, ``.2`` … (as pandas names them)."""
    seen: dict[str, int] = {}
    names = []
    for value in header.fillna("").astype(str):
        count = seen.get(value, 0)
        seen[value] = count + 1
        names.append(value if count == 0 else f"{value}.{count}")
    return names


def _check_columns(frame: pd.DataFrame, name: str, wanted: dict[str, str]) -> dict[str, str]:
    """Map logical names to the file's column names; the first header column matching each pattern wins."""
    found = {}
    normal = {c: re.sub(r"^\(\d+\)\s*", "", str(c)).strip().lower() for c in frame.columns}
    for key, pattern in wanted.items():
        hits = [c for c, n in normal.items() if re.fullmatch(pattern, n)]
        if not hits:
            raise InputFileError(name, f"no column matching {pattern!r} for {key} in the header "
                                       f"{list(frame.columns)[:12]}…; is this the right file?")
        found[key] = hits[0]
    return found


class _Rejects:
    """Collects rejected rows of one source (vectorised: one mask per reason)."""

    def __init__(self, source: str):
        self.source = source
        self.parts: list[pd.DataFrame] = []

    def add(self, file: str, rows, reason: str, details) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows):
            self.parts.append(pd.DataFrame({"source": self.source, "file": file, "row": rows, "reason": reason,
                                            "detail": pd.Series(details, dtype=object).astype(str).to_numpy()}))

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({c: pd.Series(dtype=object if c != "row" else np.int64) for c in REJECTED_COLUMNS})
        return pd.concat(self.parts, ignore_index=True)[REJECTED_COLUMNS]


def _validate(frame: pd.DataFrame, rows: np.ndarray, file: str, cols: dict[str, str], bad: list[dict],
              rejects: _Rejects) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric lat/lon/q; rows failing a check are rejected (first reason only) and dropped."""
    for b in bad:
        rejects.add(file, [b["row"]], "malformed line", [b["detail"]])
    keep = np.ones(len(frame), dtype=bool)
    text = {k: frame[c].fillna("").str.strip() for k, c in cols.items() if k in ("lat", "lon", "q")}
    num = {k: pd.to_numeric(v, errors="coerce").to_numpy(dtype=float) for k, v in text.items()}
    checks = [
        ("missing coordinates", lambda: (text["lat"] == "").to_numpy() | (text["lon"] == "").to_numpy(),
         lambda m: "lat=" + text["lat"][m] + " lon=" + text["lon"][m]),
        ("non-numeric coordinates", lambda: ~np.isfinite(num["lat"]) | ~np.isfinite(num["lon"]),
         lambda m: "lat=" + text["lat"][m] + " lon=" + text["lon"][m]),
        ("coordinates out of range", lambda: (np.abs(num["lat"]) > 90) | (num["lon"] < -180) | (num["lon"] > 360),
         lambda m: "lat=" + text["lat"][m] + " lon=" + text["lon"][m]),
        ("missing heat flow", lambda: (text["q"] == "").to_numpy(), lambda m: text["q"][m].map(repr)),
        ("non-numeric heat flow", lambda: ~np.isfinite(num["q"]), lambda m: text["q"][m].map(repr)),
    ]
    with np.errstate(invalid="ignore"):
        for reason, test, detail in checks:
            mask = keep & test()
            if mask.any():
                rejects.add(file, rows[mask], reason, detail(mask).to_numpy())
                keep &= ~mask
    out = pd.DataFrame({"lat": num["lat"][keep], "lon": grid.wrap_longitude(num["lon"][keep]),
                        "q": num["q"][keep]})
    return out, keep


def _finish(source: str, pts: pd.DataFrame, rejects: _Rejects) -> tuple[pd.DataFrame, pd.DataFrame]:
    pts = pts.assign(source=source)
    pts["marine"] = pts["marine"].astype("boolean")
    pts["row"] = pts["row"].astype(np.int64)
    pts = pts[COLUMNS].reset_index(drop=True)
    rejected = rejects.frame()
    if len(rejected):
        logger.warning("%s: %d rows rejected (%s)", source, len(rejected),
                       ", ".join(f"{r}: {n}" for r, n in rejected["reason"].value_counts().items()))
    logger.info("%s: %d rows read", source, len(pts))
    return pts, rejected


# ------------------------------------------------------------------------------------------------ readers
def read_ihfc(path: str | os.PathLike[str], value: str | None = None, weights: dict | None = None,
              unassessed_weight: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the IHFC Global Heat Flow Database (release 2024).

    Parameters
    ----------
    path : str or pathlib.Path
        The release zip (``IHFC_2024_GHFDB.zip``, one CSV member) or the CSV itself; UTF-8 with or without a
        byte-order mark, comma separated, with the release's header (``q``, ``qc``, ``lat_NS``, ``long_EW``,
        ``Domain``, ``environment``, ``Quality_Code``, ``ID``).
    value : {"q", "qc"}, optional
        Column used as heat flow (``seisgrid.heatflow.ihfc_value``, ``q``: observed, as the other sources).
    weights : dict, optional
        U-score → weight (``seisgrid.heatflow.ihfc_weights``).
    unassessed_weight : float, optional
        Weight of ``Ux`` rows (``seisgrid.heatflow.unassessed_weight``).

    Returns
    -------
    points : pandas.DataFrame
        Columns ``source`` ("ihfc"), ``lat``, ``lon`` (degrees, lon in [-180, 180)), ``q`` (mW m⁻²),
        ``quality`` (U-score, e.g. "U2" or "Ux"), ``weight``, ``marine`` (from ``Domain``), ``row``, ``file``,
        ``id`` (the IHFC ``ID``).
    rejected : pandas.DataFrame
        ``source, file, row, reason, detail`` of every rejected row.

    Raises
    ------
    InputFileError
        When the file is missing, is not a zip with one CSV / a CSV, or lacks a needed column.
    """
    path = pathlib.Path(path)
    value = str(_setting("ihfc_value", value))
    if value not in ("q", "qc"):
        raise ConfigError(f"seisgrid.heatflow.ihfc_value must be q or qc, not {value!r}")
    weights = _weight_map("ihfc_weights", weights)
    unassessed = _unassessed(unassessed_weight)
    if not path.is_file():
        raise InputFileError(path, "no IHFC database there (expected IHFC_2024_GHFDB.zip from the IHFC GHFDB "
                                   "portal; set SEISGRID_DATA to the data folder)")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            members = [m for m in z.namelist() if m.lower().endswith(".csv") and not m.startswith("__MACOSX")]
            if len(members) != 1:
                raise InputFileError(path, f"expected one CSV member in the zip, found {members or 'none'}")
            name = f"{path.name}:{members[0]}"
            data: io.BytesIO | pathlib.Path = io.BytesIO(z.read(members[0]))
    else:
        name, data = path.name, path
    frame, rows, bad = _read_text_table(data, name, ",")
    wanted = ["lat_NS", "long_EW", value, "Domain", "environment", "Quality_Code", "ID"]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise InputFileError(name, f"no column(s) {missing} in the header; expected the IHFC 2024 GHFDB CSV")
    frame = frame[wanted]
    rejects = _Rejects("ihfc")
    cols = {"lat": "lat_NS", "lon": "long_EW", "q": value}
    pts, keep = _validate(frame, rows, name, cols, bad, rejects)
    kept = frame[keep]
    domain = kept["Domain"].str.strip().str.lower()
    env = kept["environment"].str.strip().str.lower()
    marine = pd.Series(pd.NA, index=kept.index, dtype="boolean")
    marine[env.str.contains("onshore")] = False
    marine[env.str.contains("offshore")] = True
    has_domain = domain != ""
    marine[has_domain] = ~domain[has_domain].str.startswith("continental")
    quality = kept["Quality_Code"].str.strip().str[:2]
    pts["quality"] = quality.to_numpy()
    pts["weight"] = _assign_weights(quality, weights, unassessed, "ihfc", unassessed_codes=("", "Ux"))
    pts["marine"] = marine.to_numpy()
    pts["row"] = rows[keep]
    pts["file"] = name
    pts["id"] = kept["ID"].to_numpy()
    return _finish("ihfc", pts, rejects)


def _nghf_paths(path) -> list[tuple[str, pathlib.Path]]:
    if isinstance(path, dict):
        return [(str(k).upper(), pathlib.Path(v)) for k, v in path.items()]
    folder = pathlib.Path(path)
    if not folder.is_dir():
        raise InputFileError(folder, "no NGHF folder there (expected NGHF_ra/_rab/_rabc/_rabcd.xyz[.gz])")
    out = []
    for cls, stem in NGHF_FILES:
        hits = [folder / f"{stem}.xyz.gz", folder / f"{stem}.xyz"]
        hit = next((h for h in hits if h.is_file()), None)
        if hit is None:
            raise InputFileError(folder / f"{stem}.xyz.gz", f"missing NGHF subset file (class {cls}); the "
                                 "four nested subsets NGHF_ra, _rab, _rabc, _rabcd are all needed")
        out.append((cls, hit))
    return out


def read_nghf(path: str | os.PathLike[str] | dict[str, str | os.PathLike[str]],
              weights: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the NGHF (Lucazeau 2019) quality subsets and give each point its class.

    Parameters
    ----------
    path : str, pathlib.Path or dict
        Folder holding ``NGHF_ra``, ``NGHF_rab``, ``NGHF_rabc``, ``NGHF_rabcd`` (``.xyz.gz`` or ``.xyz``;
        tab separated, header ``lon lat heat-flow (mW/m2)``), or a mapping class letter → file, the files
        nested in class order (A ⊂ AB ⊂ ABC ⊂ ABCD).
    weights : dict, optional
        Class letter → weight (``seisgrid.heatflow.nghf_weights``).

    Returns
    -------
    points, rejected : pandas.DataFrame
        As :func:`read_ihfc`; ``quality`` is the class (first subset a point appears in), ``marine`` is NA
        (no environment field), ``row``/``file`` name the point's line in that first subset, ``id`` is "".
        Malformed lines are rejected once per file they occur in.
    """
    weights = _weight_map("nghf_weights", weights)
    parts, rejects = [], _Rejects("nghf")
    for order, (cls, file) in enumerate(_nghf_paths(path)):
        if not file.is_file():
            raise InputFileError(file, f"missing NGHF subset file (class {cls})")
        frame, rows, bad = _read_text_table(file, file.name, "\t")
        if frame.shape[1] < 3:
            raise InputFileError(file, f"expected 3 tab-separated columns lon, lat, heat flow; header has "
                                       f"{list(frame.columns)}")
        frame = frame.iloc[:, :3]
        cols = dict(zip(("lon", "lat", "q"), frame.columns, strict=True))
        pts, keep = _validate(frame, rows, file.name, cols, bad, rejects)
        pts["quality"], pts["order"], pts["row"], pts["file"] = cls, order, rows[keep], file.name
        parts.append(pts)
    pts = pd.concat(parts, ignore_index=True)
    # The k-th copy of a (lon, lat, q) point in a file is the same point as the k-th copy in the next file.
    pts["copy"] = pts.groupby(["order", "lon", "lat", "q"], sort=False).cumcount()
    pts = pts.sort_values(["order", "row"], kind="stable")
    pts = pts.drop_duplicates(["lon", "lat", "q", "copy"], keep="first")
    pts = pts.sort_values(["order", "row"], kind="stable").reset_index(drop=True)
    pts["weight"] = _assign_weights(pts["quality"], weights, 0.0, "nghf")
    pts["marine"], pts["id"] = pd.NA, ""
    return _finish("nghf", pts, rejects)


def read_antarctic(path: str | os.PathLike[str], weights: dict | None = None,
                   unassessed_weight: float | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the Antarctic GHF point database (Burton-Johnson et al. 2020, V004, CSV export).

    Parameters
    ----------
    path : str or pathlib.Path
        CSV with the database's header (``(1) Latitude``, ``(2) Longitude``, ``(8) GHF (mW/m²)``,
        ``(10) Elevation (m.a.s.l.)``, ``(13) DataQuality``, …; the "(n) " prefixes are optional).
    weights : dict, optional
        DataQuality digit → weight (``seisgrid.heatflow.antarctic_weights``).
    unassessed_weight : float, optional
        Weight of rows with a blank DataQuality (``seisgrid.heatflow.unassessed_weight``).

    Returns
    -------
    points, rejected : pandas.DataFrame
        As :func:`read_ihfc`; ``quality`` is the DataQuality code (e.g. "S1", "" when blank), ``marine`` is
        ``elevation < 0`` where an elevation is given and NA otherwise, ``id`` is the station ID.
    """
    path = pathlib.Path(path)
    weights = _weight_map("antarctic_weights", weights)
    unassessed = _unassessed(unassessed_weight)
    if not path.is_file():
        raise InputFileError(path, "no Antarctic GHF database CSV there (ANT_GHF_DB_V004.csv)")
    frame, rows, bad = _read_text_table(path, path.name, ",")
    cols = _check_columns(frame, path.name, {"lat": r"latitude", "lon": r"longitude", "q": r"ghf\b.*",
                                             "quality": r"dataquality", "elevation": r"elevation\b.*",
                                             "id": r"station id"})
    rejects = _Rejects("antarctic")
    pts, keep = _validate(frame, rows, path.name, cols, bad, rejects)
    kept = frame[keep]
    quality = kept[cols["quality"]].str.strip()
    digit = quality.str.extract(r"(\d)\s*$", expand=False).fillna("")
    pts["quality"] = quality.to_numpy()
    pts["weight"] = _assign_weights(digit.where(quality != "", ""), weights, unassessed, "antarctic")
    elevation = pd.to_numeric(kept[cols["elevation"]].str.strip(), errors="coerce")
    pts["marine"] = pd.array(np.where(elevation.notna(), elevation < 0, pd.NA), dtype="boolean")
    pts["row"], pts["file"], pts["id"] = rows[keep], path.name, kept[cols["id"]].str.strip().to_numpy()
    return _finish("antarctic", pts, rejects)


READERS: dict[str, Callable[..., tuple[pd.DataFrame, pd.DataFrame]]] = {
    "ihfc": read_ihfc, "nghf": read_nghf, "antarctic": read_antarctic}


# --------------------------------------------------------------------------------------------- compilation
def ghf_data_dir(data_dir: str | os.PathLike[str] | None = None) -> pathlib.Path:
    """The folder holding the GHF source folders: ``data_dir`` (or its ``ghf`` subfolder), else ``data_dir()/ghf``."""
    if data_dir is None:
        root = config.data_dir()
        if root is None:
            raise InputFileError("$SEISGRID_DATA/ghf", "no data folder: set SEISGRID_DATA to the folder of the "
                                                       "real data (holding ghf/)")
        data_dir = root / "ghf"
    data_dir = pathlib.Path(data_dir)
    if not (data_dir / SOURCE_PATHS["ihfc"].split("/")[0]).exists() and (data_dir / "ghf").is_dir():
        data_dir = data_dir / "ghf"
    return data_dir


def _source_paths(data_dir, sources) -> dict[str, object]:
    names: dict[str, object]
    if isinstance(sources, dict):
        names = dict(sources)
    else:
        selected = _setting("sources", sources)
        # "ihfc,nghf" (a string setting or argument) names two sources, not its characters
        listed = [s.strip() for s in selected.split(",") if s.strip()] if isinstance(selected, str) else list(selected)
        folder = ghf_data_dir(data_dir)
        names = {n: folder / SOURCE_PATHS[n] if n in SOURCE_PATHS else None for n in listed}
    unknown = [n for n in names if n not in READERS]
    if unknown:
        raise ConfigError(f"unknown heat-flow source(s) {unknown}; known: {list(SOURCES)}")
    if not names:
        raise ConfigError("no heat-flow sources selected (seisgrid.heatflow.sources)")
    return names


def _step(steps: list, name: str, frame: pd.DataFrame, before: int, order: list[str],
          removed: pd.DataFrame | None = None) -> None:
    counts = frame["source"].value_counts()
    entry: dict[str, Any] = {"step": name, "rows": len(frame), "removed": int(before - len(frame)),
                             "by_source": {str(s): int(counts.get(s, 0)) for s in order}}
    if removed is not None:
        entry["examples"] = [{"file": str(r.file), "row": int(r.row), "q": float(r.q)}
                             for r in removed.head(_EXAMPLES_PER_REASON).itertuples()]
    steps.append(entry)
    logger.info("heat flow: %-22s %7d rows (-%d)", name, len(frame), before - len(frame))


def _keep(steps: list, name: str, points: pd.DataFrame, keep: np.ndarray, order: list[str]) -> pd.DataFrame:
    """The rows of ``points`` where ``keep``; step ``name`` records the count and the first removed rows."""
    _step(steps, name, points[keep], len(points), order, removed=points[~keep])
    return points[keep].reset_index(drop=True)


def cross_source_duplicates(points: pd.DataFrame, order: list[str], km: float, dq: float,
                            rel: float) -> tuple[np.ndarray, dict]:
    """Which rows duplicate a row of another source (see the module docstring for the rule).

    Parameters
    ----------
    points : pandas.DataFrame
        ``source, lat, lon, q, weight``.
    order : list of str
        Source priority for ties in weight (first wins).
    km : float
        Largest distance between two copies of one measurement, km.
    dq, rel : float
        Largest value difference: ``max(dq, rel · max(q1, q2))`` (mW m⁻², fraction).

    Returns
    -------
    duplicate : numpy.ndarray of bool
        True for rows to drop (the lower-ranked row of each matched pair).
    pairs : dict
        Matched pairs per ``"a/b"`` source pair.
    """
    from scipy.spatial import cKDTree

    n = len(points)
    drop = np.zeros(n, dtype=bool)
    pair_counts: dict[str, int] = {}
    if n == 0:
        return drop, pair_counts
    prio = {s: i for i, s in enumerate(order)}
    src_rank = points["source"].map(prio).fillna(len(prio)).to_numpy()
    # Rank: higher weight first, then source priority, then file order; rank 0 is the best row.
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((np.arange(n), src_rank, -points["weight"].to_numpy()))] = np.arange(n)
    xyz = grid.unit_vectors(points["lat"].to_numpy(), points["lon"].to_numpy())
    q = points["q"].to_numpy(dtype=float)
    chord = 2.0 * np.sin(km / (2.0 * grid.EARTH_RADIUS_KM))
    names = [s for s in order if (points["source"] == s).any()]
    index = {s: np.flatnonzero(points["source"].to_numpy() == s) for s in names}
    trees = {s: cKDTree(xyz[index[s]]) for s in names}
    for a_i, a in enumerate(names):
        for b in names[a_i + 1:]:
            sdm = trees[a].sparse_distance_matrix(trees[b], chord, output_type="ndarray")
            ia, ib = index[a][sdm["i"]], index[b][sdm["j"]]
            diff = np.abs(q[ia] - q[ib])
            ok = diff <= np.maximum(dq, rel * np.maximum(np.abs(q[ia]), np.abs(q[ib])))
            ia, ib, diff, dist = ia[ok], ib[ok], diff[ok], sdm["v"][ok]
            used_a, used_b, matched = set(), set(), []
            # One-to-one matching, closest values (then distances) first; a loop over candidate pairs only.
            for k in np.lexsort((dist, diff)):
                x, y = int(ia[k]), int(ib[k])
                if x in used_a or y in used_b:
                    continue
                used_a.add(x)
                used_b.add(y)
                matched.append((x, y))
            if matched:
                m = np.asarray(matched, dtype=np.int64)
                loser = np.where(rank[m[:, 0]] < rank[m[:, 1]], m[:, 1], m[:, 0])
                drop[loser] = True
            pair_counts[f"{a}/{b}"] = len(matched)
    return drop, pair_counts


def iqr_fences(q: ArrayLike, lower: float, upper: float) -> tuple[float, float, dict]:
    """The study's IQR fences ``Q1 − lower·IQR`` and ``Q3 + upper·IQR`` of ``q`` (linear-interpolated quartiles).

    Returns
    -------
    low, high : float
        Fences in the units of ``q``; rows outside ``[low, high]`` are outliers.
    stats : dict
        ``q1, q3, iqr, lower, upper`` (fences) and the coefficients.
    """
    q = np.asarray(q, dtype=float)
    if q.size == 0:
        return -np.inf, np.inf, {}
    q1, q3 = np.percentile(q, [25.0, 75.0])
    iqr = q3 - q1
    low, high = q1 - lower * iqr, q3 + upper * iqr
    stats = {"q1": float(q1), "q3": float(q3), "iqr": float(iqr), "lower_fence": float(low),
             "upper_fence": float(high), "lower_coefficient": float(lower), "upper_coefficient": float(upper)}
    return float(low), float(high), stats


def cell_iqr_mask(points: pd.DataFrame, lower: float, upper: float, res: float | None = None) -> np.ndarray:
    """True for rows inside the IQR fences of their own grid cell (``iqr_scope: cell``).

    Quartiles per cell are linear-interpolated as in :func:`iqr_fences`; a cell with one point keeps it.
    """
    if not len(points):
        return np.zeros(0, dtype=bool)
    lat, lon = grid.grid_coords(res)
    i, j = grid.cell_index(points["lat"].to_numpy(), points["lon"].to_numpy(), float(lat[1] - lat[0]))
    cell = pd.Series(i * len(lon) + j, index=points.index)
    g = points["q"].groupby(cell)
    q1 = cell.map(g.quantile(0.25)).to_numpy()
    q3 = cell.map(g.quantile(0.75)).to_numpy()
    q = points["q"].to_numpy(dtype=float)
    return (q >= q1 - lower * (q3 - q1)) & (q <= q3 + upper * (q3 - q1))


def _rejected_summary(rejected: pd.DataFrame) -> dict:
    if not len(rejected):
        return {"total": 0, "by_reason": {}, "examples": []}
    examples = (rejected.groupby("reason", sort=False).head(_EXAMPLES_PER_REASON)
                .loc[:, ["file", "row", "reason", "detail"]])
    return {"total": len(rejected),
            "by_reason": {str(r): int(n) for r, n in rejected["reason"].value_counts().items()},
            "examples": [{"file": str(e.file), "row": int(e.row), "reason": str(e.reason), "detail": str(e.detail)}
                         for e in examples.itertuples()]}


def compile_heatflow(data_dir: str | os.PathLike[str] | None = None,
                     sources: Sequence[str] | dict[str, str | os.PathLike[str] | dict] | None = None, *,
                     ihfc_value: str | None = None,
                     iqr_lower: float | None = None, iqr_upper: float | None = None,
                     iqr_scope: str | None = None, q_min: float | None = None, q_max: float | None = None,
                     duplicate_km: float | None = None, duplicate_dq: float | None = None,
                     duplicate_rel: float | None = None, ihfc_weights: dict | None = None,
                     nghf_weights: dict | None = None, antarctic_weights: dict | None = None,
                     unassessed_weight: float | None = None) -> tuple[pd.DataFrame, dict]:
    """Read, merge and filter the heat-flow sources (the module docstring gives the recipe and its reasons).

    Parameters
    ----------
    data_dir : str or pathlib.Path, optional
        Folder holding the source folders (``…/data/ghf``, or its parent); default ``config.data_dir()/ghf``.
    sources : list of str or dict, optional
        Source names (``seisgrid.heatflow.sources``: ihfc, nghf, antarctic), or a mapping name → path (a
        file, or for nghf a folder / class → file mapping) to read other copies (tests use small slices).
    ihfc_value, iqr_lower, iqr_upper, iqr_scope, q_min, q_max, duplicate_km, duplicate_dq, duplicate_rel, \
ihfc_weights, nghf_weights, antarctic_weights, unassessed_weight
        Override the ``seisgrid.heatflow.*`` setting of the same name.

    Returns
    -------
    points : pandas.DataFrame
        Accepted points (columns as the readers', ``q`` in mW m⁻²), in source then file order.
    report : dict
        ``steps``: ``{"step", "rows" (after it), "removed", "by_source"}`` for read, missing/malformed,
        marine, duplicates, iqr, bounds, weights (the filter steps add ``examples``: file, row and ``q`` of
        the first rows they removed, e.g. negative or absurd heat flow at ``bounds``); ``rejected``:
        ``{"total", "by_reason", "examples"}`` (examples name file, row, reason); ``iqr``: quartiles and
        fences; ``duplicates``: matched pairs per source pair; ``quality``: accepted rows per source and
        quality code; ``sources``: paths read; ``settings``: the effective parameters.
    """
    paths = _source_paths(data_dir, sources)
    order = list(paths)
    scope = str(_setting("iqr_scope", iqr_scope))
    if scope not in ("global", "cell"):
        raise ConfigError(f"seisgrid.heatflow.iqr_scope must be global or cell, not {scope!r}")
    settings: dict[str, Any] = {
        "ihfc_value": str(_setting("ihfc_value", ihfc_value)),
        "iqr_lower": float(_setting("iqr_lower", iqr_lower)), "iqr_upper": float(_setting("iqr_upper", iqr_upper)),
        "iqr_scope": str(_setting("iqr_scope", iqr_scope)),
        "q_min": float(_setting("q_min", q_min)), "q_max": float(_setting("q_max", q_max)),
        "duplicate_km": float(_setting("duplicate_km", duplicate_km)),
        "duplicate_dq": float(_setting("duplicate_dq", duplicate_dq)),
        "duplicate_rel": float(_setting("duplicate_rel", duplicate_rel)),
        "ihfc_weights": _weight_map("ihfc_weights", ihfc_weights),
        "nghf_weights": _weight_map("nghf_weights", nghf_weights),
        "antarctic_weights": _weight_map("antarctic_weights", antarctic_weights),
        "unassessed_weight": _unassessed(unassessed_weight),
    }
    kwargs = {
        "ihfc": {"value": settings["ihfc_value"], "weights": settings["ihfc_weights"],
                 "unassessed_weight": settings["unassessed_weight"]},
        "nghf": {"weights": settings["nghf_weights"]},
        "antarctic": {"weights": settings["antarctic_weights"], "unassessed_weight": settings["unassessed_weight"]},
    }
    frames, rejects = [], []
    for name, path in paths.items():
        if path is None:
            raise ConfigError(f"no path for heat-flow source {name!r}")
        pts, rej = READERS[name](path, **kwargs[name])
        frames.append(pts)
        rejects.append(rej)
    points = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    points["marine"] = points["marine"].astype("boolean")
    rejected = pd.concat(rejects, ignore_index=True)
    steps: list[dict] = []
    read_counts = pd.concat([points["source"], rejected["source"]]).value_counts()
    steps.append({"step": "read", "rows": int(len(points) + len(rejected)), "removed": 0,
                  "by_source": {str(s): int(read_counts.get(s, 0)) for s in order}})
    _step(steps, "missing/malformed", points, len(points) + len(rejected), order)

    # Marine: the source's own field where it has one, the land mask elsewhere.
    marine = points["marine"].copy()
    unknown = marine.isna().to_numpy()
    if unknown.any():
        land = grid.is_land(points["lat"].to_numpy()[unknown], points["lon"].to_numpy()[unknown])
        marine[unknown] = ~land
    points = _keep(steps, "marine", points, ~marine.to_numpy(dtype=bool), order)

    drop, pairs = cross_source_duplicates(points, order, settings["duplicate_km"], settings["duplicate_dq"],
                                          settings["duplicate_rel"])
    points = _keep(steps, "duplicates", points, ~drop, order)

    low, high, iqr_stats = iqr_fences(points["q"], settings["iqr_lower"], settings["iqr_upper"])
    iqr_stats["scope"] = scope
    if scope == "global":
        inside = ((points["q"] >= low) & (points["q"] <= high)).to_numpy()
    else:
        iqr_stats = {"scope": "cell", "lower_coefficient": settings["iqr_lower"],
                     "upper_coefficient": settings["iqr_upper"]}
        inside = cell_iqr_mask(points, settings["iqr_lower"], settings["iqr_upper"])
    points = _keep(steps, "iqr", points, inside, order)

    bounded = ((points["q"] > settings["q_min"]) & (points["q"] <= settings["q_max"])).to_numpy()
    points = _keep(steps, "bounds", points, bounded, order)

    points = _keep(steps, "weights", points, (points["weight"] > 0).to_numpy(), order)

    quality = {str(s): {str(c): int(n) for c, n in g["quality"].value_counts().sort_index().items()}
               for s, g in points.groupby("source", sort=False)}
    report = {
        "steps": steps,
        "rejected": _rejected_summary(rejected),
        "iqr": iqr_stats,
        "duplicates": pairs,
        "quality": quality,
        "sources": {k: str(v) for k, v in paths.items()},
        "settings": settings,
    }
    return points, report


# ----------------------------------------------------------------------------------------------- gridding
def grid_heatflow(points: pd.DataFrame, res: float | None = None) -> xr.Dataset:
    """Quality-weighted cell means of heat-flow points on the global grid.

    Parameters
    ----------
    points : pandas.DataFrame
        ``lat``, ``lon`` (degrees), ``q`` (mW m⁻²), ``weight`` (> 0) and optionally ``source``.
    res : float, optional
        Cell size in degrees (default ``seisgrid.ghf.resolution``, 0.5).

    Returns
    -------
    xarray.Dataset
        On :func:`seisgrid.ghf.grid.empty_dataset`: ``heatflow`` (float32, mW m⁻², ``Σ w q / Σ w``, NaN in
        empty cells), ``heatflow_count`` (int32, points per cell), ``heatflow_weight`` (float32, ``Σ w``).
    """
    ds = grid.empty_dataset(res)
    n_lat, n_lon = ds.sizes["lat"], ds.sizes["lon"]
    lat = points["lat"].to_numpy(dtype=float)
    lon = points["lon"].to_numpy(dtype=float)
    q = points["q"].to_numpy(dtype=float)
    w = points["weight"].to_numpy(dtype=float)
    if np.any(~np.isfinite(q)) or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError("grid_heatflow: q and weight must be finite and weights non-negative")
    i, j = grid.cell_index(lat, lon, float(ds.attrs["grid_resolution_deg"]))
    flat = i * n_lon + j
    size = n_lat * n_lon
    count = np.bincount(flat, minlength=size).reshape(n_lat, n_lon)
    wsum = np.bincount(flat, weights=w, minlength=size).reshape(n_lat, n_lon)
    wq = np.bincount(flat, weights=w * q, minlength=size).reshape(n_lat, n_lon)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(wsum > 0, wq / wsum, np.nan)
    used = sorted(set(points["source"])) if "source" in points and len(points) else []
    src = "; ".join(SOURCE_CITATIONS.get(s, s) for s in used) or "none"
    dims = ("lat", "lon")
    ds["heatflow"] = (dims, mean.astype(np.float32), {
        "units": "mW m-2", "long_name": "geothermal heat flow, quality-weighted cell mean",
        "standard_name": "upward_geothermal_heat_flux_at_ground_level", "source": src,
        "method": "sum(w*q)/sum(w) over the accepted points in the cell (seisgrid.ghf.heatflow); w = quality "
                  "weight; NaN where the cell has no point"})
    ds["heatflow_count"] = (dims, count.astype(np.int32), {
        "units": "1", "long_name": "heat-flow points per cell", "source": src,
        "method": "number of accepted points in the cell"})
    ds["heatflow_weight"] = (dims, wsum.astype(np.float32), {
        "units": "1", "long_name": "sum of quality weights per cell", "source": src,
        "method": "sum of the accepted points' quality weights (each in (0, 1])"})
    return ds


def cell_statistics(ds: xr.Dataset) -> dict:
    """``cells`` (non-empty), ``mean`` and ``sd`` (sample, ddof=1; unweighted over cells) of ``heatflow``, mW m⁻²."""
    values = ds["heatflow"].values
    values = values[np.isfinite(values)].astype(float)
    return {"cells": int(values.size),
            "mean": round(float(values.mean()), 2) if values.size else None,
            "sd": round(float(values.std(ddof=1)), 2) if values.size > 1 else None}


def points_dataset(points: pd.DataFrame) -> xr.Dataset:
    """The accepted points on a ``point`` dimension (``lat``, ``lon``, ``q``, ``weight``, int8 ``source``)."""
    codes = {s: i for i, s in enumerate(SOURCES)}
    source = points["source"].map(codes).fillna(-1).to_numpy(dtype=np.int8)
    dims = ("point",)
    pts = xr.Dataset({
        "lat": (dims, points["lat"].to_numpy(dtype=float), {"units": "degrees_north", "long_name": "latitude"}),
        "lon": (dims, points["lon"].to_numpy(dtype=float), {"units": "degrees_east", "long_name": "longitude"}),
        "q": (dims, points["q"].to_numpy(dtype=np.float32), {"units": "mW m-2", "long_name": "heat flow"}),
        "weight": (dims, points["weight"].to_numpy(dtype=np.float32),
                   {"units": "1", "long_name": "quality weight"}),
        "source": (dims, source, {"long_name": "source database", "flag_values": list(range(len(SOURCES))),
                                  "flag_meanings": " ".join(SOURCES)}),
    })
    pts.attrs["description"] = "accepted heat-flow points the grid in the root group was made from"
    return pts


def build_heatflow(out: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None,
                   sources: Sequence[str] | dict[str, str | os.PathLike[str] | dict] | None = None,
                   storage_options: dict | None = None, **overrides) -> dict:
    """Compile, grid and write the heat-flow target to a Zarr store (``seisgrid ghf heatflow OUT``).

    Parameters
    ----------
    out : str
        Store path or URL (``s3://…``); overwritten.
    data_dir, sources
        As :func:`compile_heatflow`.
    storage_options : dict, optional
        fsspec options overriding ``seisgrid.storage.<protocol>``.
    **overrides
        Keyword overrides of :func:`compile_heatflow`.

    Returns
    -------
    dict
        The compile report plus ``cells``, ``mean``, ``sd`` (of the cell values, mW m⁻²), ``points``, ``out``
        and ``reference`` (the study's figures).
    """
    import zarr

    points, report = compile_heatflow(data_dir, sources, **overrides)
    ds = grid_heatflow(points)
    stats = cell_statistics(ds)
    ds.attrs.update(
        title="geothermal heat-flow target, quality-weighted 0.5° cell means",
        history="seisgrid ghf heatflow",
        heatflow_sources=json.dumps(report["sources"]),
        heatflow_settings=json.dumps(report["settings"]),
        heatflow_steps=json.dumps([{k: s[k] for k in ("step", "rows", "removed")} for s in report["steps"]]),
        heatflow_iqr=json.dumps(report["iqr"]),
        points_group="points",
    )
    opts = storage.storage_options(str(out), storage_options) if storage_options else None
    store = storage.zarr_store(str(out), opts)
    encoding = {name: {"chunks": ds[name].shape} for name in ds.data_vars}
    with warnings.catch_warnings():
        # Consolidated metadata (one read opens the store, also on s3://) is a zarr-python extension of v3.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        ds.to_zarr(store, mode="w", zarr_format=3, consolidated=False, encoding=encoding)
        points_dataset(points).to_zarr(store, group="points", mode="w", zarr_format=3, consolidated=False)
        zarr.consolidate_metadata(store)
    logger.info("heat flow: %d cells, mean %s, sd %s mW m-2 (study: ~%d, %.1f ± %.1f) → %s", stats["cells"],
                stats["mean"], stats["sd"], REFERENCE["cells"], REFERENCE["mean"], REFERENCE["sd"], out)
    report.update(stats, points=len(points), out=str(out), reference=dict(REFERENCE))
    return report
