"""Heat-flow compilation (seisgrid.ghf.heatflow).

Readers on tiny files in the real formats, the IQR rule and the weighted gridding against hand-computed
values, duplicate and marine removal, rejected rows, the store.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import data_path, requires_data

from seisgrid.errors import ConfigError, InputFileError
from seisgrid.ghf import grid
from seisgrid.ghf import heatflow as hf

IHFC_HEADER = ["q", "q_uncertainty", "name", "lat_NS", "long_EW", "environment", "qc", "publication_reference",
               "Domain", "Quality_Code", "ID_parent", "ID"]

# Land: central Germany, Kansas; ocean: mid-Atlantic (checked against the mask in test_points_are_where_we_think).
GERMANY = (50.0, 10.0)
KANSAS = (38.0, -98.0)
ATLANTIC = (0.0, -30.0)


def ihfc_row(q, lat, lon, domain="continental", quality="Ux.Mx.-------", ident="R24-1", qc=None, ref="Doe 2000",
             env="[onshore (continental)]"):
    return [q, "", "site", lat, lon, env, q if qc is None else qc, ref, domain, quality, "P1", ident]


def write_ihfc(tmp_path, rows, name="IHFC_2024_GHFDB.zip", extra_lines=()):
    """A zipped UTF-8 CSV with a byte-order mark, as the real release."""
    buf = io.StringIO()
    pd.DataFrame(rows, columns=IHFC_HEADER).to_csv(buf, index=False, lineterminator="\n")
    text = buf.getvalue() + "".join(extra_lines)
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("IHFC_2024_GHFDB.csv", "\ufeff" + text)
    return path


def write_nghf(folder, subsets):
    r"""NGHF_ra/_rab/_rabc/_rabcd.xyz.gz (tab separated, gzip); ``subsets`` maps stem → lines "lon\tlat\tq"."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, lines in subsets.items():
        with gzip.open(folder / f"{stem}.xyz.gz", "wt") as f:
            f.write("lon\tlat\theat-flow (mW/m2)\n" + "".join(line + "\n" for line in lines))
    return folder


ANT_HEADER = ("(1) Latitude,(2) Longitude,(3) Station ID,(8) GHF (mW/m²),(10) Elevation (m.a.s.l.),"
              "(13) DataQuality,(14) Method\n")


def write_antarctic(tmp_path, lines):
    path = tmp_path / "ANT_GHF_DB_V004.csv"
    path.write_text(ANT_HEADER + "".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_points_are_where_we_think():
    assert list(grid.is_land(*zip(GERMANY, KANSAS, ATLANTIC, strict=True))) == [True, True, False]


# ---------------------------------------------------------------------------------------------------- readers
def test_read_ihfc_zip_with_bom_and_rejected_rows(tmp_path):
    rows = [
        ihfc_row(60, 50.0, 10.0, quality="U1.M1.-------", ident="R24-1",
                 ref='Smith, "quoted"\nsecond line'),               # record 2: a field with a line break
        ihfc_row(70, 38.0, -98.0, ident="R24-2"),                   # record 3, Ux
        ihfc_row(55, 0.0, -30.0, domain="marine", env="[offshore (marine)]", ident="R24-3"),  # 4
        ihfc_row(80, 46.0, 8.0, domain="continental/lake", quality="U4.M2.-------", ident="R24-4"),  # 5
        ihfc_row("", 46.0, 8.0, ident="R24-5"),                     # 6: missing q
        ihfc_row("abc", 46.0, 8.0, ident="R24-6"),                  # 7: non-numeric q
        ihfc_row(50, 95.0, 8.0, ident="R24-7"),                     # 8: latitude out of range
        ihfc_row(50, "", 8.0, ident="R24-8"),                       # 9: missing coordinates
    ]
    extra = ["1,2,3,4,5,6,7,8,9,10,11,12,13,14\n",                  # 10: too many fields
             "65,,site,45.0,181.5,[onshore (continental)],65,x,continental,U2.Mx.-------,P9,R24-9\n"]  # 11
    path = write_ihfc(tmp_path, rows, extra_lines=extra)
    pts, rej = hf.read_ihfc(path)
    assert list(pts["id"]) == ["R24-1", "R24-2", "R24-3", "R24-4", "R24-9"]
    assert list(pts["row"]) == [2, 3, 4, 5, 11]
    assert list(pts["q"]) == [60, 70, 55, 80, 65]
    assert list(pts["quality"]) == ["U1", "Ux", "Ux", "U4", "U2"]
    assert list(pts["weight"]) == [1.0, 0.25, 0.25, 0.25, 0.75]
    assert list(pts["marine"]) == [False, False, True, False, False]
    assert pts["lon"].iloc[-1] == pytest.approx(-178.5)  # wrapped into [-180, 180)
    assert set(pts.columns) >= {"source", "lat", "lon", "q", "quality", "weight", "marine", "row"}
    reasons = dict(zip(rej["row"], rej["reason"], strict=True))
    assert reasons == {6: "missing heat flow", 7: "non-numeric heat flow", 8: "coordinates out of range",
                       9: "missing coordinates", 10: "malformed line"}
    assert (rej["file"] == "IHFC_2024_GHFDB.zip:IHFC_2024_GHFDB.csv").all()
    assert "expected 12 fields, saw 14" in rej.set_index("row").loc[10, "detail"]


def test_read_ihfc_value_column_and_errors(tmp_path):
    path = write_ihfc(tmp_path, [ihfc_row(60, 50.0, 10.0, qc=75)])
    assert hf.read_ihfc(path)[0]["q"].iloc[0] == 60
    assert hf.read_ihfc(path, value="qc")[0]["q"].iloc[0] == 75
    with pytest.raises(ConfigError):
        hf.read_ihfc(path, value="q_uncertainty")
    with pytest.raises(InputFileError, match="no IHFC database"):
        hf.read_ihfc(tmp_path / "missing.zip")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputFileError, match=r"bad.csv: no column\(s\)"):
        hf.read_ihfc(bad)


def test_read_nghf_classes_from_nested_subsets(tmp_path):
    a = ["10.0\t50.0\t60.0", "10.0\t50.0\t60.0"]           # an exact repeat, twice in class A
    b = a + ["11.0\t51.0\t70.0"]
    c = b + ["10.0\t50.0\t60.0", "12.0\t52.0\t80"]          # a third copy of the repeat: class C
    d = c + ["13.0\t53.0\t90.0", "14.0 53.0 91.0", "15.0\t54.0\tn/a", "16\t55\t92\t7"]  # bad lines
    folder = write_nghf(tmp_path / "nghf", {"NGHF_ra": a, "NGHF_rab": b, "NGHF_rabc": c, "NGHF_rabcd": d})
    pts, rej = hf.read_nghf(folder)
    assert list(pts["quality"]) == ["A", "A", "B", "C", "C", "D"]
    assert list(pts["q"]) == [60, 60, 70, 60, 80, 90]
    assert list(pts["weight"]) == [1.0, 1.0, 0.75, 0.5, 0.5, 0.25]
    assert list(pts["file"]) == ["NGHF_ra.xyz.gz"] * 2 + ["NGHF_rab.xyz.gz", "NGHF_rabc.xyz.gz",
                                                          "NGHF_rabc.xyz.gz", "NGHF_rabcd.xyz.gz"]
    assert list(pts["row"]) == [2, 3, 4, 5, 6, 7]
    assert pts["marine"].isna().all()
    assert sorted(zip(rej["row"], rej["reason"], strict=True)) == [(8, "missing coordinates"),
                                                                   (9, "non-numeric heat flow"),
                                                                   (10, "malformed line")]
    assert rej.set_index("row").loc[8, "detail"] == "lat= lon=14.0 53.0 91.0"  # the detail shows why
    assert (rej["file"] == "NGHF_rabcd.xyz.gz").all()
    with pytest.raises(InputFileError, match="NGHF_ra"):
        hf.read_nghf(tmp_path)


def test_read_antarctic(tmp_path):
    path = write_antarctic(tmp_path, [
        "-77.38,161.81,DVDP-6,88.0,349.0,R2,Bedrock borehole",    # land by elevation
        "-69.2233,38.675,JARE22-1,50.0,-666.0,R1,Bedrock borehole",  # sea floor
        "-78.45,106.87,Vostok,53.0,,I3,Ice borehole",              # no elevation: land mask decides
        "-79.43,-163.33,Roosevelt,70.0,,,Glaciological model",    # unassessed
        ",,Engelhardt Ridge,85.0,,,Glaciological model",          # missing coordinates
        "-57.442,-43.36,U1538,,-3130.0,,Bedrock borehole",        # missing heat flow
    ])
    pts, rej = hf.read_antarctic(path)
    assert list(pts["id"]) == ["DVDP-6", "JARE22-1", "Vostok", "Roosevelt"]
    assert list(pts["quality"]) == ["R2", "R1", "I3", ""]
    assert list(pts["weight"]) == [0.625, 0.25, 1.0, 0.25]
    assert list(pts["marine"].astype(object)) == [False, True, pd.NA, pd.NA]
    assert list(zip(rej["row"], rej["reason"], strict=True)) == [(6, "missing coordinates"), (7, "missing heat flow")]
    assert hf.read_antarctic(path, unassessed_weight=0.1)[0]["weight"].iloc[-1] == 0.1


# ----------------------------------------------------------------------------------------- rules, by hand
def test_iqr_fences_by_hand():
    q = [10, 20, 30, 40, 50, 60, 70, 80, 90, 400]
    low, high, stats = hf.iqr_fences(q, 1.15, 1.25)
    # Q1 = 30 + 0.25·10 = 32.5, Q3 = 70 + 0.75·10 = 77.5 (linear interpolation), IQR = 45
    assert stats["q1"] == 32.5 and stats["q3"] == 77.5 and stats["iqr"] == 45.0
    assert low == pytest.approx(32.5 - 1.15 * 45) and high == pytest.approx(77.5 + 1.25 * 45)  # -19.25, 133.75


def test_cell_iqr_by_hand():
    pts = pd.DataFrame({"lat": [50.1] * 5 + [38.1], "lon": [10.1] * 5 + [-98.1], "q": [50, 60, 70, 80, 200, 500]})
    # cell 1: Q1 60, Q3 80, IQR 20 → [37, 105]: 200 is out; cell 2: one point, kept
    assert list(hf.cell_iqr_mask(pts, 1.15, 1.25)) == [True, True, True, True, False, True]


def test_grid_heatflow_weighted_mean_by_hand():
    pts = pd.DataFrame({"lat": [0.1, 0.4, 0.2, -45.3], "lon": [0.1, 0.3, 0.49, 179.9], "q": [60.0, 90.0, 30.0, 50.0],
                        "weight": [1.0, 0.5, 0.25, 0.25], "source": ["ihfc", "nghf", "ihfc", "antarctic"]})
    ds = hf.grid_heatflow(pts)
    assert ds.sizes == {"lat": 360, "lon": 720}
    cell = ds.sel(lat=0.25, lon=0.25)
    assert float(cell.heatflow) == pytest.approx((60 * 1 + 90 * 0.5 + 30 * 0.25) / 1.75)  # 64.2857
    assert int(cell.heatflow_count) == 3 and float(cell.heatflow_weight) == pytest.approx(1.75)
    assert float(ds.heatflow.sel(lat=-45.25, lon=179.75)) == 50.0
    assert int(ds.heatflow_count.sum()) == 4 and int(np.isfinite(ds.heatflow).sum()) == 2
    assert np.isnan(float(ds.heatflow.sel(lat=10.25, lon=10.25)))
    assert ds.heatflow.dtype == np.float32 and ds.heatflow_count.dtype == np.int32
    assert ds.heatflow_weight.dtype == np.float32
    for name in ("heatflow", "heatflow_count", "heatflow_weight"):
        assert {"units", "long_name", "source", "method"} <= set(ds[name].attrs)
    assert ds.heatflow.attrs["units"] == "mW m-2" and "Lucazeau" in ds.heatflow.attrs["source"]
    stats = hf.cell_statistics(ds)
    assert stats["cells"] == 2 and stats["mean"] == pytest.approx((64.2857 + 50) / 2, abs=0.01)


def test_cross_source_duplicates_one_to_one():
    lat0, lon0 = 10.0, 20.0
    pts = pd.DataFrame({
        "source": ["ihfc", "ihfc", "ihfc", "ihfc", "nghf", "nghf", "nghf"],
        "lat": [lat0, lat0, lat0, lat0 + 0.045, lat0 + 0.005, lat0 + 0.002, lat0 + 0.0452],
        "lon": [lon0, lon0, lon0, lon0, lon0 + 0.003, lon0, lon0],
        "q": [60.0, 61.0, 62.0, 70.0, 61.0, 90.0, 100.0],
        "weight": [0.25, 0.25, 0.25, 1.0, 1.0, 0.75, 0.25],
    })
    drop, pairs = hf.cross_source_duplicates(pts, ["ihfc", "nghf"], km=1.0, dq=2.0, rel=0.05)
    # IHFC 61 ↔ NGHF 61 (0.6 km, same value): the NGHF A row wins; 60 and 62 are separate children;
    # NGHF 90 is 0.2 km away but its value differs; IHFC 70 / NGHF 100 are 20 m apart but differ by 30.
    assert list(drop) == [False, True, False, False, False, False, False]
    assert pairs == {"ihfc/nghf": 1}
    # A tie in weight keeps the source listed first.
    tie = pts.assign(weight=0.25)
    assert list(hf.cross_source_duplicates(tie, ["nghf", "ihfc"], 1.0, 2.0, 0.05)[0]) == \
        [False, True, False, False, False, False, False]
    assert list(hf.cross_source_duplicates(tie, ["ihfc", "nghf"], 1.0, 2.0, 0.05)[0]) == \
        [False, False, False, False, True, False, False]
    # 1.2 km apart is no longer a duplicate at 1 km.
    far = pts.assign(lat=[lat0, lat0, lat0, 0.0, lat0 + 0.0108, -5.0, 5.0])
    assert not hf.cross_source_duplicates(far, ["ihfc", "nghf"], 1.0, 2.0, 0.05)[0].any()


# ------------------------------------------------------------------------------------------------ compile
@pytest.fixture
def slices(tmp_path):
    """Tiny copies of the three sources with marine sites, a duplicate, an outlier and bad rows."""
    gl, gn = GERMANY
    kl, kn = KANSAS
    ihfc = write_ihfc(tmp_path, [
        ihfc_row(60, gl, gn, ident="I1"),                                           # duplicate of NGHF A
        ihfc_row(70, gl + 0.1, gn, quality="U2.M1.-------", ident="I2"),
        ihfc_row(80, kl, kn, ident="I3"),
        ihfc_row(65, *ATLANTIC, domain="marine", env="[offshore (marine)]", ident="I4"),   # marine
        ihfc_row(75, gl, gn + 0.2, ident="I5"),
        ihfc_row(-5, gl, gn + 0.3, ident="I6"),                                     # below the lower fence
        ihfc_row(990, kl, kn + 0.1, ident="I7"),                                    # above the upper fence
        ihfc_row("", kl, kn + 0.2, ident="I8"),                                     # missing value
    ])
    nghf = write_nghf(tmp_path / "nghf", {
        "NGHF_ra": [f"{gn + 0.004}\t{gl}\t61.0"],
        "NGHF_rab": [f"{gn + 0.004}\t{gl}\t61.0"],
        "NGHF_rabc": [f"{gn + 0.004}\t{gl}\t61.0", f"{ATLANTIC[1]}\t{ATLANTIC[0]}\t55"],   # ocean by the mask
        "NGHF_rabcd": [f"{gn + 0.004}\t{gl}\t61.0", f"{ATLANTIC[1]}\t{ATLANTIC[0]}\t55", f"{kn}\t{kl + 0.3}\t90",
                       "1\t2\t3\t4"],                                               # too many fields
    })
    ant = write_antarctic(tmp_path, ["-78.45,106.87,Vostok,53.0,,I3,Ice borehole",
                                     "-69.2233,38.675,JARE22-1,50.0,-666.0,R1,Bedrock borehole",
                                     ",,Engelhardt Ridge,85.0,,,Glaciological model"])
    return {"ihfc": ihfc, "nghf": nghf, "antarctic": ant}


def test_compile_steps_on_slices(slices):
    pts, report = hf.compile_heatflow(sources=slices, iqr_scope="global")
    steps = {s["step"]: s for s in report["steps"]}
    assert [s["step"] for s in report["steps"]] == ["read", "missing/malformed", "marine", "duplicates", "iqr",
                                                    "bounds", "weights"]
    assert steps["read"]["rows"] == 8 + 4 + 3
    assert steps["missing/malformed"]["removed"] == 3          # I8, the 4-field line, Engelhardt Ridge
    assert steps["marine"]["removed"] == 3                     # I4 (Domain), NGHF Atlantic (mask), JARE (elevation)
    assert steps["duplicates"]["removed"] == 1 and report["duplicates"]["ihfc/nghf"] == 1
    assert steps["iqr"]["removed"] == 2                        # -5 and 990
    assert steps["bounds"]["removed"] == 0 and steps["weights"]["rows"] == 6
    assert steps["marine"]["by_source"] == {"ihfc": 6, "nghf": 2, "antarctic": 1}
    assert sorted(pts["q"]) == [53.0, 61.0, 70.0, 75.0, 80.0, 90.0]
    assert "I1" not in set(pts["id"])                            # the NGHF class-A copy won
    assert pts.loc[pts["source"] == "nghf", "quality"].tolist() == ["A", "D"]
    rejected = report["rejected"]
    assert rejected["total"] == 3
    assert rejected["by_reason"] == {"missing heat flow": 1, "malformed line": 1, "missing coordinates": 1}
    example = {(e["file"], e["row"], e["reason"]) for e in rejected["examples"]}
    assert ("NGHF_rabcd.xyz.gz", 5, "malformed line") in example
    assert ("ANT_GHF_DB_V004.csv", 4, "missing coordinates") in example
    assert report["iqr"]["scope"] == "global"
    json.dumps(report)  # plain JSON for --json


def test_compile_overrides(slices):
    # The study's "assessed only": unassessed rows get weight 0 and are dropped at the weights step.
    pts, report = hf.compile_heatflow(sources=slices, iqr_scope="global", unassessed_weight=0.0)
    assert set(pts["quality"]) == {"U2", "A", "D", "I3"}
    assert report["steps"][-1]["removed"] == 2
    # Wider value tolerance, tighter distance: the duplicate at 0.3 km goes away at 0.1 km.
    _, report = hf.compile_heatflow(sources=slices, iqr_scope="global", duplicate_km=0.1)
    assert report["steps"][3]["removed"] == 0
    # Bounds instead of the IQR rule.
    _, report = hf.compile_heatflow(sources=slices, iqr_scope="global", iqr_lower=100, iqr_upper=100, q_max=200)
    assert report["steps"][4]["removed"] == 0 and report["steps"][5]["removed"] == 2
    with pytest.raises(ConfigError):
        hf.compile_heatflow(sources={"nope": slices["ihfc"]})
    with pytest.raises(ConfigError):
        hf.compile_heatflow(sources=slices, nghf_weights={"A": 2.0})
    with pytest.raises(ConfigError):
        hf.compile_heatflow(sources=slices, iqr_scope="continent")


def test_sources_given_as_text_name_whole_sources(tmp_path, monkeypatch):
    """A comma-separated setting (an environment variable arrives as text) names sources, not characters."""
    paths = hf._source_paths(tmp_path, "ihfc, nghf")
    assert list(paths) == ["ihfc", "nghf"]
    monkeypatch.setenv("SEISGRID_HEATFLOW__SOURCES", "antarctic")
    from seisgrid import config

    config.refresh()
    try:
        assert list(hf._source_paths(tmp_path, None)) == ["antarctic"]
    finally:
        monkeypatch.undo()
        config.refresh()
    with pytest.raises(ConfigError, match=r"\['nope'\]"):
        hf._source_paths(tmp_path, "ihfc,nope")


def test_build_heatflow_store(slices, tmp_path):
    out = tmp_path / "hf.zarr"
    report = hf.build_heatflow(str(out), sources=slices)
    assert {"steps", "cells", "mean", "sd", "rejected", "out", "reference"} <= set(report)
    assert report["reference"]["cells"] == 10000 and report["out"] == str(out)
    ds = xr.open_zarr(out)
    assert set(ds.data_vars) == {"heatflow", "heatflow_count", "heatflow_weight"}
    assert int(np.isfinite(ds.heatflow).sum()) == report["cells"]
    assert int(ds.heatflow_count.sum()) == report["points"] == 6
    assert float(ds.heatflow.mean()) == pytest.approx(report["mean"], abs=0.01)
    assert json.loads(ds.attrs["heatflow_settings"])["iqr_lower"] == 1.15
    pts = xr.open_zarr(out, group="points")
    assert pts.sizes["point"] == 6 and set(pts.data_vars) == {"lat", "lon", "q", "weight", "source"}
    assert pts.source.attrs["flag_meanings"] == "ihfc nghf antarctic"


# ----------------------------------------------------------------------------------------------- real data
@requires_data("ghf/ihfc_ghfdb_2024")
def test_real_ihfc_counts():
    pts, rej = hf.read_ihfc(data_path("ghf/ihfc_ghfdb_2024") / "IHFC_2024_GHFDB.zip")
    assert len(pts) == 91182 and len(rej) == 0
    continental = ~pts["marine"].astype(bool) & (pts["q"] > 0) & (pts["q"] <= 200)
    assert int(continental.sum()) == 51836  # the data README's figure
    assert pts["quality"].value_counts()["Ux"] == 79168
    assert pts["row"].iloc[0] == 2 and pts["id"].iloc[0] == "R24-000001"


@requires_data("ghf/nghf_lucazeau2019_via_afq")
def test_real_nghf_classes():
    pts, rej = hf.read_nghf(data_path("ghf/nghf_lucazeau2019_via_afq"))
    assert len(rej) == 0
    assert pts["quality"].value_counts().to_dict() == {"A": 5792, "B": 12707 - 5792, "C": 35647 - 12707,
                                                       "D": 46113 - 35647}


@requires_data("ghf/antarctic_ghf_db_burton_johnson2020")
def test_real_antarctic_rejects():
    pts, rej = hf.read_antarctic(data_path("ghf/antarctic_ghf_db_burton_johnson2020") / "ANT_GHF_DB_V004.csv")
    assert len(pts) == 445
    assert sorted(zip(rej["row"], rej["reason"], strict=True)) == [(172, "missing coordinates"),
                                                                   (173, "missing coordinates"),
                                                                   (433, "missing heat flow")]


@requires_data("ghf/ihfc_ghfdb_2024")
@requires_data("ghf/nghf_lucazeau2019_via_afq")
@requires_data("ghf/antarctic_ghf_db_burton_johnson2020")
def test_real_compile():
    pts, report = hf.compile_heatflow()
    rows = {s["step"]: s["rows"] for s in report["steps"]}
    assert rows["read"] == 91182 + 46113 + 448 and rows["missing/malformed"] == rows["read"] - 3
    assert rows["weights"] == len(pts) and 40000 < len(pts) < 70000
    stats = hf.cell_statistics(hf.grid_heatflow(pts))
    assert 8000 < stats["cells"] < 11000 and 55 < stats["mean"] < 70 and 15 < stats["sd"] < 30
    assert (pts["lat"] < -60).sum() > 50  # Antarctic points survive (IHFC continental + Antarctic DB)
