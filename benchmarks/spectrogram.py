"""Benchmark: spectrogram images per second per core, NumPy/SciPy path and torch path (and CUDA when present).

On synthetic random windows of the real shape (window, 3, 2500) float32 (100 Hz, 25 s; one window in
eight has absent components) this measures, in this process:

1. **numpy** — :func:`seisgrid.seismic.spectrogram.spectrogram_numpy` + the float16 store rounding, one
   thread (``scipy.fft`` runs single-threaded; BLAS/OpenMP pools pinned to 1): windows/s **per core**;
2. **torch (CPU)** — :func:`spectrogram_torch` on CPU tensors with ``torch.set_num_threads(1)``: per core;
3. **torch (CUDA)**, only when a CUDA device is present — the same call on the GPU, host→device copy,
   float16 rounding and device→host copy included, ``torch.cuda.synchronize`` around each repeat
   (windows/s for the whole GPU; the script needs no change to report it);
4. **agreement** — max |numpy − torch| on the float32 images and the fraction of identical stored
   (float16) pixels, for each torch device;
5. **end to end** — :func:`seisgrid.seismic.spectrogram.spectrograms` on a window store written to a temp
   folder (open, map over Dask chunks, write Zarr v3), numpy path, Dask's threaded scheduler with
   ``--workers`` threads (default 2).

Each timing is the median of ``--repeats`` repeats (after one warm-up). Whether other processes were using
the cores is checked before and after (load average, and 2 processes of pure-Python work against 1) and
recorded as ``machine_busy``. The goal: one core makes the images of a station-year (25 s windows, 50 %
overlap: 2,522,880 windows) in at most the 3.8 h per year the detection study reports for its whole
ResNet-50 processing, i.e. ≥ 184 windows/s per core.

Human lines go to stderr; the last stdout line is one JSON object (``metric`` =
``spectrogram_windows_per_s``, ``value``, ``unit``, ``goal``, both paths' figures, the machine). Full runs
write ``benchmarks/results/spectrogram.json``, ``--quick`` runs ``benchmarks/results/spectrogram-quick.json``.

Usage (from the repository root)::

    python benchmarks/spectrogram.py --quick     # well under a minute on 2 cores
    python benchmarks/spectrogram.py             # 256-window batches, 7 repeats
"""

from __future__ import annotations

import os

# per-core figures: no hidden thread pools (set before NumPy starts one; unrolled so the imports below
# count as the top of the module)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    REPO,
    busy_machine,
    cpu_scaling,
    load_average,
    log,
    provenance,
    write_result,
)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
N_SAMPLES = 2500
STATION_YEAR_WINDOWS = 365 * 86400 // 25 * 2  # 25 s windows with 50 % overlap
STUDY_HOURS_PER_YEAR = 3.8  # REFERENCE.md §A: ResNet-50, processing hours per year of data
GOAL = round(STATION_YEAR_WINDOWS / (STUDY_HOURS_PER_YEAR * 3600))  # windows/s per core
VERSIONS = ("seisgrid", "numpy", "scipy", "torch", "dask", "xarray", "zarr")


def windows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, N_SAMPLES), dtype=np.float32)
    x *= rng.lognormal(5, 2, size=(n, 3, 1)).astype(np.float32)  # amplitudes over decades
    x[::8, 1:] = 0  # single-component records
    return x


# ------------------------------------------------------------------------------------------ machine
def gpu_name() -> str | None:
    """The name of CUDA device 0, or None without torch or a CUDA device."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return None


# ------------------------------------------------------------------------------------------- timing
def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up (plans, caches, CUDA context)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def summarise(times: list[float], n: int, per_core: bool) -> dict:
    med = statistics.median(times)
    rate = n / med
    result = {"windows": n, "median_s": round(med, 5), "times_s": [round(t, 5) for t in times],
              "windows_per_s": round(rate, 1)}
    if per_core:
        result["windows_per_s_per_core"] = round(rate, 1)
        result["hours_per_station_year_per_core"] = round(STATION_YEAR_WINDOWS / rate / 3600, 3)
    else:
        result["hours_per_station_year"] = round(STATION_YEAR_WINDOWS / rate / 3600, 4)
    return result


def bench_numpy(x: np.ndarray, repeats: int, params) -> dict:
    from seisgrid.seismic import spectrogram as sg

    times = timed(lambda: sg.to_store_numpy(sg.spectrogram_numpy(x, params)), repeats)
    return summarise(times, len(x), per_core=True) | {"threads": 1}


def bench_torch(x: np.ndarray, repeats: int, params, device: str) -> dict:
    import torch

    from seisgrid.seismic import spectrogram as sg

    def run():
        t = torch.from_numpy(x).to(device)
        out = sg.to_store_torch(sg.spectrogram_torch(t, params)).cpu().numpy()
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    times = timed(run, repeats)
    result = summarise(times, len(x), per_core=(device == "cpu"))
    result["threads"] = torch.get_num_threads() if device == "cpu" else None
    return result


def agreement(x: np.ndarray, params, device: str) -> dict:
    import torch

    from seisgrid.seismic import spectrogram as sg

    a = sg.spectrogram_numpy(x, params)
    b = sg.spectrogram_torch(torch.from_numpy(x).to(device), params).cpu().numpy()
    sa, sb = sg.to_store_numpy(a), sg.to_store_numpy(b)
    return {"device": device, "windows": len(x), "max_abs_diff_float32": float(np.abs(a - b).max()),
            "mean_abs_diff_float32": float(np.abs(a - b).mean()),
            "identical_float16_fraction": round(float((sa == sb).mean()), 6)}


def end_to_end(n: int, workers: int, batch: int, workdir: Path) -> dict:
    import warnings

    import dask
    import xarray as xr

    from seisgrid import storage
    from seisgrid.seismic import spectrogram as sg

    src, dst = workdir / "windows.zarr", workdir / "spec.zarr"
    x = windows(n, seed=1)
    ds = xr.Dataset({"waveform": (("window", "component", "sample"), x),
                     "label": ("window", (np.arange(n) % 2).astype(np.int8))},
                    coords={"component": ["Z", "N", "E"]}, attrs={"sampling_rate": 100.0})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The data type .* does not have a Zarr V3 specification")
        ds.chunk({"window": 256}).to_zarr(storage.zarr_store(str(src)), mode="w", zarr_format=3,
                                          consolidated=False)
    with dask.config.set(scheduler="threads", num_workers=workers), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The data type .* does not have a Zarr V3 specification")
        summary = sg.spectrograms(str(src), str(dst), method="numpy", progress=False, batch=batch)
    return {"windows": n, "workers": workers, "scheduler": "threads", "batch": batch,
            "seconds": summary["seconds"], "windows_per_s": summary["windows_per_s"],
            "windows_per_s_per_core": round(summary["windows_per_s"] / workers, 1)}


# --------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64-window batches, 3 repeats (well under a minute)")
    parser.add_argument("--windows", type=int, default=None, help="windows per timed batch (default 256; --quick 64)")
    parser.add_argument("--gpu-windows", type=int, default=None,
                        help="windows per timed batch on CUDA (default 2048; --quick 512)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats, medians reported (default 7; --quick 3)")
    parser.add_argument("--workers", type=int, default=2, help="threads of the end-to-end run (default 2)")
    parser.add_argument("--output", default=None,
                        help="JSON result path (default benchmarks/results/spectrogram[-quick].json)")
    args = parser.parse_args(argv)
    n = args.windows or (64 if args.quick else 256)
    n_gpu = args.gpu_windows or (512 if args.quick else 2048)
    repeats = args.repeats or (3 if args.quick else 7)
    if min(n, n_gpu, repeats, args.workers) < 1:
        parser.error("--windows, --gpu-windows, --repeats and --workers must be ≥ 1")

    from seisgrid.seismic.spectrogram import SpectrogramParams

    params = SpectrogramParams()  # the documented defaults
    loads = [load_average()]
    scaling = [cpu_scaling()]
    log(f"CPU check: 2 processes ran {scaling[0]['speedup']:.2f}× one (load average {loads[0]})")

    x = windows(n)
    result_paths: dict = {}
    log(f"numpy: {n} windows × {repeats} repeats, 1 thread ...")
    result_paths["numpy"] = bench_numpy(x, repeats, params)
    log(f"numpy:        {result_paths['numpy']['windows_per_s']:9.1f} windows/s per core")

    has_torch = True
    try:
        import torch
    except ImportError:
        has_torch = False
        log("torch not installed: torch paths skipped (pip install -e '.[gpu]')")
    agree = []
    if has_torch:
        torch.set_num_threads(1)
        log(f"torch (cpu): {n} windows × {repeats} repeats, 1 thread ...")
        result_paths["torch_cpu"] = bench_torch(x, repeats, params, "cpu")
        log(f"torch (cpu):  {result_paths['torch_cpu']['windows_per_s']:9.1f} windows/s per core")
        agree.append(agreement(x[:32], params, "cpu"))
        if torch.cuda.is_available():
            xg = windows(n_gpu, seed=2)
            log(f"torch (cuda): {n_gpu} windows × {repeats} repeats ...")
            result_paths["torch_cuda"] = bench_torch(xg, repeats, params, "cuda")
            result_paths["torch_cuda"]["device_name"] = torch.cuda.get_device_name(0)
            log(f"torch (cuda): {result_paths['torch_cuda']['windows_per_s']:9.1f} windows/s (whole GPU)")
            agree.append(agreement(x[:32], params, "cuda"))
        for a in agree:
            log(f"agreement numpy vs torch ({a['device']}): max |diff| {a['max_abs_diff_float32']:.2e}, "
                f"identical float16 {a['identical_float16_fraction']:.4%}")

    with tempfile.TemporaryDirectory(prefix="seisgrid-bench-spectrogram-") as tmp:
        e2e_n = 256 if args.quick else 1024
        log(f"end to end: spectrograms() on {e2e_n} windows, numpy, {args.workers} threads ...")
        e2e = end_to_end(e2e_n, args.workers, 64, Path(tmp))
        log(f"end to end:   {e2e['windows_per_s']:9.1f} windows/s ({e2e['windows_per_s_per_core']:.1f} per core)")

    loads.append(load_average())
    scaling.append(cpu_scaling())
    busy = busy_machine(scaling, loads, "the figures are lower bounds")

    cpu_best = max(result_paths["numpy"]["windows_per_s"],
                   result_paths.get("torch_cpu", {}).get("windows_per_s", 0))
    if "torch_cuda" in result_paths:
        value, value_meaning = result_paths["torch_cuda"]["windows_per_s"], "torch path on the CUDA GPU (whole GPU)"
    else:
        value, value_meaning = cpu_best, "faster CPU path, windows/s per core (1 thread)"
    extra = "".join(f" --{k.replace('_', '-')} {v}" for k, v in
                    (("windows", args.windows), ("gpu_windows", args.gpu_windows), ("repeats", args.repeats))
                    if v is not None)
    result = {
        "metric": "spectrogram_windows_per_s",
        "value": value,
        "unit": "windows/s",
        "value_meaning": value_meaning,
        "goal": GOAL,
        "goal_meaning": f"≥ {GOAL} windows/s per core: one core makes a station-year of images "
                        f"({STATION_YEAR_WINDOWS:,} windows of 25 s, 50 % overlap) within the study's "
                        f"{STUDY_HOURS_PER_YEAR} h per year of data",
        "goal_ok": cpu_best >= GOAL,
        "numpy_windows_per_s_per_core": result_paths["numpy"]["windows_per_s"],
        "torch_cpu_windows_per_s_per_core": result_paths.get("torch_cpu", {}).get("windows_per_s"),
        "torch_cuda_windows_per_s": result_paths.get("torch_cuda", {}).get("windows_per_s"),
        "torch_cpu_vs_numpy": (round(result_paths["torch_cpu"]["windows_per_s"]
                                     / result_paths["numpy"]["windows_per_s"], 3)
                               if "torch_cpu" in result_paths else None),
        "paths": result_paths,
        "agreement": agree,
        "end_to_end": e2e,
        "machine_busy": busy,
        "cpu_scaling": scaling,
        "load_average": loads,
        "inputs": {"shape": [n, 3, N_SAMPLES], "dtype": "float32", "sampling_rate": 100.0,
                   "absent_components": "windows 0, 8, 16, ...: N and E all zero",
                   "parameters": {k: getattr(params, k) for k in ("n_fft", "hop", "f_min", "f_max", "size",
                                                                  "dynamic_range_db", "clip")}},
        "repeats": repeats,
        "quick": args.quick,
        **provenance("spectrogram", f"{' --quick' if args.quick else ''}{extra}", VERSIONS, {"gpu": gpu_name()}),
    }
    write_result(result, "spectrogram", args.quick, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
