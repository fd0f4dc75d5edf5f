"""``seisgrid ghf ...`` from the command line.

On the real data: heatflow → features (coarse grid) → vif → maps, errors name the missing input;
``ghf train --regional-km`` on a synthetic grid.
"""

import json

import xarray as xr
from helpers import requires_data

from seisgrid.cli import main


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@requires_data("ghf")
def test_ghf_commands_on_real_data(tmp_path, capsys):
    heatflow, features = tmp_path / "heatflow.zarr", tmp_path / "features.zarr"
    # The real compilation rejects three malformed Antarctic rows (no coordinates / no value): exit 3.
    assert main(["ghf", "heatflow", str(heatflow), "--json"]) == 3
    report = _last_json(capsys)
    assert 8000 < report["cells"] < 11000 and 55 < report["mean"] < 70 and 15 < report["sd"] < 30
    assert next(s["step"] for s in report["steps"]) == "read" and report["rejected"]["total"] == 3
    assert {"steps", "cells", "mean", "sd", "rejected"} <= set(report)

    assert main(["ghf", "features", str(features), "--resolution", "5", "--cluster", "none",
                 "--only", "moho_depth,lab_depth,tectonic_class,volcano", "--json"]) == 0
    built = _last_json(capsys)
    names = {v["name"] for v in built["variables"]}
    assert {"moho_depth", "lab_depth", "tectonic_class", "volcano_index_500km"} <= names
    ds = xr.open_zarr(features)
    assert ds.sizes == {"lat": 36, "lon": 72}
    assert "kriging" in ds.moho_depth.attrs["method"] and ds.moho_depth.attrs["units"] == "km"
    assert set(map(int, set(ds.tectonic_class.values.ravel()))) <= set(range(1, 7))

    # VIF needs both stores on one grid: a 5° feature grid and the 0.5° heat flow are refused by name.
    assert main(["ghf", "vif", str(features), str(heatflow)]) == 1
    assert "grid" in capsys.readouterr().err

    assert main(["ghf", "maps", str(features), "--out", str(tmp_path / "maps"), "--variables",
                 "moho_depth,tectonic_class", "--json"]) == 0
    figures = _last_json(capsys)["figures"]
    assert len(figures) == 4 and all((tmp_path / "maps" / f.split("/")[-1]).stat().st_size > 10_000 for f in figures)


def test_ghf_errors_name_the_input(tmp_path, capsys):
    assert main(["ghf", "heatflow", str(tmp_path / "hf.zarr"), "--data", str(tmp_path / "nowhere")]) == 1
    assert "nowhere" in capsys.readouterr().err
    assert main(["ghf", "vif", str(tmp_path / "missing.zarr"), str(tmp_path / "also-missing.zarr")]) == 1
    assert "missing.zarr" in capsys.readouterr().err


def test_ghf_train_with_regional_means_from_the_command_line(tmp_path, capsys):
    import numpy as np

    from seisgrid.ghf.grid import empty_dataset

    rng = np.random.default_rng(0)
    feats, hf = empty_dataset(4.0), empty_dataset(4.0)
    shape = (feats.sizes["lat"], feats.sizes["lon"])
    feats["a"] = (("lat", "lon"), rng.normal(size=shape).astype(np.float32))
    feats["b"] = (("lat", "lon"), rng.normal(size=shape).astype(np.float32))
    chosen = rng.random(shape) < 0.25
    hf["heatflow"] = (("lat", "lon"), np.where(chosen, 60 + 10 * feats["a"].values, np.nan).astype(np.float32))
    feats.to_zarr(tmp_path / "f.zarr")
    hf.to_zarr(tmp_path / "h.zarr")
    common = ["ghf", "train", str(tmp_path / "f.zarr"), str(tmp_path / "h.zarr"), "--variables", "a,b",
              "--cluster", "none", "--k", "2", "--max-epochs", "2", "--mc-samples", "2", "--gbt-max-iter", "5"]
    assert main([*common, "--out", str(tmp_path / "e"), "--regional-km", "900", "--json"]) == 0
    assert _last_json(capsys)["features"] == ["a", "b", "a_regional900km", "b_regional900km"]

    assert main([*common, "--out", str(tmp_path / "bad"), "--regional-km", "900,far"]) != 0
    assert "'far'" in capsys.readouterr().err
