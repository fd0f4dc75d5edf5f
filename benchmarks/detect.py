"""Benchmark: detection throughput, model-only and end to end (store → spectrogram → model), ResNet-18/50.

Measured in this process, on the device picked once (CUDA when available, else CPU; ``--device`` forces
one), with the same code on both:

1. **model-only** — random (batch, 3, 224, 224) float32 images already on the device, the model under
   ``torch.inference_mode`` → softmax probabilities. On CUDA: channels_last + bf16 autocast,
   ``cudnn.benchmark``, ``torch.cuda.synchronize`` around each repeat, batches 1024/2048/4096 tried and
   the best reported; on CPU: float32, contiguous, all of torch's threads. Untrained weights (the
   cost does not depend on them).
2. **end to end** — a synthetic archive (``synth.synthesize``: 1 station, 100 Hz, Z/N/E) ingested into
   a Zarr store (``ingest.ingest``), then per timed repeat, over the whole store (CPU: its first
   ``--minutes``): **25 s windows (2500 samples) at a 5 s stride**, in blocks of 4 batches of windows.
   A background thread reads each block (two blocks ahead, as a detector overlaps I/O with the device)
   with ``seisgrid.open_archive(store).stream(...)`` (Zarr decompression included; segments merged,
   gaps filled with 0 — the synthetic archive has none), aligned on the common span of Z/N/E (int32);
   the block is copied to the device once and cut into windows there (a strided ``unfold`` view); per
   batch: float32, **mean removed per window and component**, :func:`spectrogram_torch` on the device
   (float32, autocast off), the model (conventions as above) → P(earthquake); all probabilities are
   copied back to the host at the end. ``stages`` give the reads alone (sequential) and the same
   pipeline without the model, to show where the time goes.
3. **detect API** — when ``seisgrid.seismic.detect`` exists and has ``detect``, it is timed once (cold) on
   the whole store with an untrained checkpoint — ResNet-50 on CUDA, ResNet-18 on a CPU — at the 5 s
   stride and the best end-to-end batch (best effort: its summary or its error is recorded; the loop
   above does not use it).

Hours per station-year = windows in a station-year at the stride
(``metrics.windows_per_year(25, 5)`` = 6,311,516 for 365.25 days) ÷ windows/s ÷ 3600, for the whole
device (CUDA) or the CPU threads used (``torch_threads``). Each timing is the median of ``--repeats``
repeats after a warm-up (CUDA: one full pass; CPU: one batch). Whether other processes were using the
cores is checked before and after (load average, 2 processes of pure-Python work against 1) and
recorded as ``machine_busy``.

Goal (issue 4): ≥ 30,000 windows/s end to end with ResNet-50 in bf16 on one H200. Not reachable on a
CPU: there ``goal_ok`` is None and the CPU figure is reported as it is.

Human lines go to stderr; the last stdout line is one JSON object (``metric`` =
``detect_end_to_end_windows_per_s``, ``value`` = ResNet-50 end to end on the device, ``unit``, ``goal``,
...). Full runs write ``benchmarks/results/detect.json``, ``--quick`` runs
``benchmarks/results/detect-quick.json``.

Usage (from the repository root)::

    python benchmarks/detect.py --quick     # about a minute on 2 CPU cores
    python benchmarks/detect.py             # CPU: a few minutes; CUDA: 4 days of archive, batches to 4096
    python benchmarks/detect.py --compile   # the same with torch.compile'd models
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import time
import warnings
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
    work_folder,
    write_result,
)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

WINDOW_SECONDS = 25.0
STRIDE_SECONDS = 5.0
FS = 100.0
GOAL = 30_000  # windows/s end to end, ResNet-50 bf16, one H200 (issue 4)
ARCHS = ("resnet18", "resnet50", "seisformer_small", "wavenet")  # --archs; a GPU also runs seisformer (ViT-B/16)
VERSIONS = ("seisgrid", "numpy", "torch", "zarr", "obspy")


# ------------------------------------------------------------------------------------------- device
class Device:
    """The device, picked once, and the project's conventions for running a model on it."""

    def __init__(self, name: str | None):
        import torch

        from seisgrid.seismic.models import pick_device

        self.torch = torch
        self.device = pick_device(name)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def model(self, arch: str, compile: bool = False):
        from seisgrid.seismic.models import build

        torch = self.torch
        torch.manual_seed(0)
        model = build(arch).to(self.device).eval()
        if self.cuda and getattr(model, "input_kind", "spectrogram") == "spectrogram":
            model = model.to(memory_format=torch.channels_last)
        if compile:
            model = torch.compile(model)  # compiled at the first (warm-up) call of each batch shape
        return model

    def probabilities(self, model, images):
        """P(earthquake) of a batch of images (on the device): inference mode, bf16 + channels_last on CUDA."""
        torch = self.torch
        with torch.inference_mode(), torch.autocast(device_type=self.device.type, dtype=torch.bfloat16,
                                                    enabled=self.cuda):
            if self.cuda and images.ndim == 4:
                images = images.contiguous(memory_format=torch.channels_last)
            return torch.softmax(model(images).float(), dim=1)[:, 1]

    def name(self) -> str:
        if self.cuda:
            return self.torch.cuda.get_device_name(self.device)
        return "cpu"


def timed(fn, repeats: int, warmup: int, sync) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


# --------------------------------------------------------------------------------------- model only
def model_only(dev: Device, arch: str, batches: list[int], repeats: int, compile: bool = False) -> dict:
    from seisgrid.seismic.models import WINDOW_SHAPES, input_kind

    torch = dev.torch
    model = dev.model(arch, compile)
    runs = []
    for batch in batches:
        gen = torch.Generator(device=dev.device).manual_seed(0)
        x = torch.randn(batch, *WINDOW_SHAPES[input_kind(arch)][1:], generator=gen, device=dev.device)
        if dev.cuda and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            times = timed(lambda x=x: dev.probabilities(model, x), repeats, warmup=3 if dev.cuda else 1, sync=dev.sync)
        except torch.OutOfMemoryError:  # only on a device with less memory than an H200
            log(f"model-only {arch}: batch {batch} does not fit in device memory, skipped")
            torch.cuda.empty_cache()
            continue
        med = statistics.median(times)
        runs.append({"batch": batch, "median_s": round(med, 5), "times_s": [round(t, 5) for t in times],
                     "windows_per_s": round(batch / med, 1)})
        log(f"model-only {arch:9s} batch {batch:5d}: {batch / med:10.1f} windows/s")
        del x
    best = max(runs, key=lambda r: r["windows_per_s"])
    return {"arch": arch, "best_batch": best["batch"], "windows_per_s": best["windows_per_s"],
            "hours_per_station_year": hours(best["windows_per_s"]), "runs": runs}


# --------------------------------------------------------------------------------------- end to end
def station_year_windows() -> int:
    from seisgrid.seismic.metrics import windows_per_year

    return windows_per_year(WINDOW_SECONDS, STRIDE_SECONDS)


def hours(rate: float) -> float:
    return round(station_year_windows() / rate / 3600, 4)


def make_store(workdir: Path, days: float) -> tuple[str, dict]:
    from seisgrid.seismic.ingest import ingest
    from seisgrid.seismic.synth import synthesize

    src, store = workdir / "archive", workdir / "store.zarr"
    t0 = time.perf_counter()
    syn = synthesize(str(src), stations=1, days=days, sampling_rates=[FS])
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = ingest(str(src), str(store), pattern="*.D.*", progress=False)
    t2 = time.perf_counter()
    return str(store), {"days": days, "stations": 1, "sampling_rate": FS, "samples": int(summary["samples_written"]),
                        "channels": summary["channels"], "synth_s": round(t1 - t0, 3), "ingest_s": round(t2 - t1, 3),
                        "events": syn.get("events")}


def read_components(store: str, start=None, end=None) -> np.ndarray:
    """(3, samples) int32 of Z, N, E of the first station, on their common span (gaps filled with 0)."""
    import seisgrid

    archive = seisgrid.open_archive(store)
    ids = archive.ids
    chans = []
    for comp in "ZNE":
        cid = next(c for c in ids if c.endswith(comp))
        st = archive.stream(cid, start, end)
        if len(st) > 1:
            st.merge(fill_value=0)
        chans.append(st[0])
    t0 = max(tr.stats.starttime for tr in chans)
    t1 = min(tr.stats.endtime for tr in chans)
    out = []
    for tr in chans:
        a = round((t0 - tr.stats.starttime) * FS)
        n = round((t1 - t0) * FS) + 1
        out.append(np.asarray(tr.data[a:a + n]))
    return np.stack(out).astype(np.int32, copy=False)


def plan_blocks(span: tuple, block_windows: int) -> tuple[list[tuple], int]:
    """Read spans (start, end) of consecutive blocks of ``block_windows`` windows covering ``span``.

    Block k holds windows k·B … (k+1)·B − 1; its read span ends one window length after its last window's
    start, so consecutive blocks overlap by (window − stride) and no window is lost or repeated.
    """
    t_start, t_end = span
    n_samples = round((t_end - t_start) * FS)
    win, stride = int(WINDOW_SECONDS * FS), int(STRIDE_SECONDS * FS)
    if n_samples < win:
        raise SystemExit(f"the store span ({n_samples} samples) is shorter than one window ({win} samples)")
    n_windows = (n_samples - win) // stride + 1
    out = []
    for a in range(0, n_windows, block_windows):
        b = min(a + block_windows, n_windows)
        first, last = a * stride, (b - 1) * stride + win  # sample range [first, last)
        out.append((t_start + first / FS, t_start + last / FS, b - a))
    return out, n_windows


def end_to_end(dev: Device, model, store: str, span: tuple, batch: int, repeats: int, full_warmup: bool,
               waveform: bool = False) -> dict:
    """Windows/s of read → windows → demean → spectrogram → model → probabilities (host), pipelined.

    ``waveform``: the model takes the demeaned windows themselves (no spectrogram stage).

    The store is read in blocks of 4 batches of windows by a background thread (two blocks ahead) while
    the device works on the current block, as a detector does; ``stages`` report the reads alone and the
    same pipeline without the model.
    """
    import collections
    import concurrent.futures

    torch = dev.torch
    from seisgrid.seismic.spectrogram import SpectrogramParams, spectrogram_torch

    params = SpectrogramParams(fs=FS)  # the documented defaults
    win, stride = int(WINDOW_SECONDS * FS), int(STRIDE_SECONDS * FS)
    blocks, n_total = plan_blocks(span, 4 * batch)
    state = {}

    def read(block):
        lo, hi, n = block
        data = read_components(store, lo, hi)
        if data.shape[1] < (n - 1) * stride + win:
            raise RuntimeError(f"store read {lo}–{hi}: {data.shape[1]} samples, expected {(n - 1) * stride + win}")
        return data, n

    def run(spectrogram_only: bool = False, limit: int | None = None):
        todo = blocks[:limit] if limit else blocks
        outs = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            ahead = collections.deque(pool.submit(read, b) for b in todo[:2])
            for k in range(len(todo)):
                data, n = ahead.popleft().result()
                if k + 2 < len(todo):
                    ahead.append(pool.submit(read, todo[k + 2]))
                w = torch.from_numpy(data).to(dev.device).unfold(-1, win, stride)[:, :n]  # (3, n, 2500) view
                probs = torch.empty(n, device=dev.device)
                for a in range(0, n, batch):
                    xb = w[:, a:a + batch].permute(1, 0, 2).to(torch.float32)
                    xb = xb - xb.mean(dim=-1, keepdim=True)  # demean per window and component
                    images = xb if waveform else spectrogram_torch(xb, params)
                    first = images.reshape(len(images), -1)[:, 0]  # "without the model": one value per window
                    probs[a:a + len(xb)] = first if spectrogram_only else dev.probabilities(model, images)
                outs.append(probs)
        state["probs"] = torch.cat(outs).cpu().numpy()

    # warm-up: CUDA (cudnn autotuning, every batch shape) and compiled models take one full pass; else a batch
    run(limit=None if full_warmup else 1)
    times = timed(run, repeats, warmup=0, sync=dev.sync)
    probs = state["probs"]
    if len(probs) != n_total:
        raise RuntimeError(f"end to end: {len(probs)} probabilities for {n_total} windows")
    med = statistics.median(times)
    t0 = time.perf_counter()
    for b in blocks:
        read(b)
    read_s = time.perf_counter() - t0
    spec_s = timed(lambda: run(spectrogram_only=True), 1, warmup=0, sync=dev.sync)[0]
    return {"batch": batch, "windows": n_total, "blocks": len(blocks), "median_s": round(med, 4),
            "times_s": [round(t, 4) for t in times], "windows_per_s": round(n_total / med, 1),
            "hours_per_station_year": hours(n_total / med), "probabilities_finite": bool(np.isfinite(probs).all()),
            "stages": {"read_alone_s": round(read_s, 4), "read_alone_share": round(read_s / med, 3),
                       "pipeline_without_model_windows_per_s": round(n_total / spec_s, 1)}}


# ----------------------------------------------------------------------------------------- detect API
def detect_api(store: str, workdir: Path, dev: Device, arch: str, batch: int) -> dict | None:
    """Time ``seisgrid.seismic.detect.detect`` once on the store (None when the module is not there)."""
    try:
        from seisgrid.seismic import detect as detect_mod
    except ImportError:
        return None
    fn = getattr(detect_mod, "detect", None)
    if not callable(fn):
        return {"available": False, "note": "seisgrid.seismic.detect has no detect()"}
    from seisgrid.seismic.models import build, save_checkpoint

    ckpt = str(workdir / f"{arch}-untrained.pt")
    save_checkpoint(ckpt, build(arch), {"arch": arch, "num_classes": 2})
    wanted = {"model_path": ckpt, "out_catalog": str(workdir / "detect-out" / "catalog"), "progress": False,
              "device": str(dev.device), "batch_size": batch, "stride_seconds": STRIDE_SECONDS}
    names = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in wanted.items() if k in names}
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = fn(store, **kwargs)
    except Exception as exc:  # noqa: BLE001 - best effort: record, never fail the benchmark
        return {"available": True, "arch": arch, "error": f"{type(exc).__name__}: {exc}"[:500],
                "kwargs": sorted(kwargs)}
    seconds = time.perf_counter() - t0
    info = {"available": True, "arch": arch, "batch": batch, "seconds": round(seconds, 3), "kwargs": sorted(kwargs),
            "note": "one cold call (model load, store scan, probabilities store, picks, association, catalog "
                    "files included); in this process, no Dask client"}
    if isinstance(summary, dict):
        info["summary"] = {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool)) or v is None}
        n = summary.get("windows")
        if isinstance(n, (int, float)) and n > 0:
            info["windows_per_s"] = round(n / seconds, 1)
            info["hours_per_station_year"] = hours(n / seconds)
    return info


# --------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches and spans, few repeats (~1 min on 2 cores)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--batches", default=None,
                        help="comma-separated batch sizes (default CPU 16 / quick 8; CUDA 1024,2048,4096 / "
                             "quick 256,1024)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats, medians reported (default 3; quick 2)")
    parser.add_argument("--days", type=float, default=None,
                        help="days of synthetic archive (default CPU 0.02 / quick 0.005; CUDA 4 / quick 0.25)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="end to end: minutes of the store read per pass (default CPU 10 / quick 5; CUDA: all)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the models (compile time excluded: it happens in the warm-up)")
    parser.add_argument("--archs", default=None,
                        help="comma-separated architectures (default: resnet18, resnet50, seisformer_small, wavenet; "
                             "with CUDA also seisformer)")
    parser.add_argument("--workdir", default=None, help="folder for the archive and store (default: a temp folder)")
    parser.add_argument("--output", default=None,
                        help="JSON result path (default benchmarks/results/detect[-quick].json)")
    args = parser.parse_args(argv)

    import torch

    dev = Device(args.device)
    cuda = dev.cuda
    if args.batches:
        batches = [int(b) for b in args.batches.split(",")]
    else:
        batches = ([256, 1024] if args.quick else [1024, 2048, 4096]) if cuda else ([8] if args.quick else [16])
    repeats = args.repeats or (2 if args.quick else 3)
    days = args.days or ((0.25 if args.quick else 4.0) if cuda else (0.005 if args.quick else 0.02))
    minutes = args.minutes if args.minutes is not None else (None if cuda else (5.0 if args.quick else 10.0))
    if min(batches) < 1 or repeats < 1 or days <= 0:
        parser.error("--batches, --repeats must be ≥ 1 and --days > 0")
    log(f"device: {dev.name()} (torch {torch.__version__}, {torch.get_num_threads()} CPU threads)")

    loads = [load_average()]
    scaling = [cpu_scaling()]
    log(f"CPU check: 2 processes ran {scaling[0]['speedup']:.2f}× one (load average {loads[0]})")

    from seisgrid.seismic.models import input_kind

    archs = [a for a in (args.archs.split(",") if args.archs else ARCHS + (("seisformer",) if cuda else ())) if a]
    results_model = {}
    for arch in archs:
        results_model[arch] = model_only(dev, arch, batches, repeats, args.compile)

    results_e2e = {}
    with work_folder(args.workdir, "seisgrid-bench-detect-") as work:
        log(f"synthetic archive: 1 station, {days:g} days at 100 Hz → Zarr ...")
        store, store_info = make_store(work, days)
        log(f"  synth {store_info['synth_s']} s, ingest {store_info['ingest_s']} s, {store_info['samples']:,} samples")
        import obspy

        import seisgrid

        channels = seisgrid.open_archive(store).inventory()["channels"]
        t_start = max(obspy.UTCDateTime(c["start"]) for c in channels)
        t_end = min(obspy.UTCDateTime(c["end"]) for c in channels) + 1 / FS  # end: after the last sample
        if minutes is not None:
            t_end = min(t_end, t_start + minutes * 60)
        span = (t_start, t_end)
        for arch in archs:
            model = dev.model(arch, args.compile)
            runs = []
            for batch in batches:
                try:
                    r = end_to_end(dev, model, store, span, batch, repeats, full_warmup=cuda or args.compile,
                                   waveform=input_kind(arch) == "waveform")
                except torch.OutOfMemoryError:
                    log(f"end to end {arch}: batch {batch} does not fit in device memory, skipped")
                    torch.cuda.empty_cache()
                    continue
                runs.append(r)
                log(f"end to end {arch:9s} batch {batch:5d}: {r['windows_per_s']:10.1f} windows/s over {r['windows']} "
                    f"windows ({r['hours_per_station_year']:.3f} h per station-year; "
                    f"reads alone {r['stages']['read_alone_s']} s, "
                    f"without the model {r['stages']['pipeline_without_model_windows_per_s']:.1f} windows/s)")
            best = max(runs, key=lambda r: r["windows_per_s"])
            results_e2e[arch] = {"arch": arch, "best_batch": best["batch"], "windows_per_s": best["windows_per_s"],
                                 "hours_per_station_year": best["hours_per_station_year"], "runs": runs}
            del model
        log("detect API: looking for seisgrid.seismic.detect.detect ...")
        # On a CPU the API runs ResNet-18 (ResNet-50 over the whole store would take minutes there)
        api_arch = "resnet50" if cuda else "resnet18"
        api = detect_api(store, work, dev, api_arch, results_e2e[api_arch]["best_batch"])
        log(f"detect API: {api if api is not None else 'not there (seisgrid/seismic/detect.py missing)'}")

    loads.append(load_average())
    scaling.append(cpu_scaling())
    busy = busy_machine(scaling, loads, "the CPU figures are lower bounds")

    value = results_e2e["resnet50"]["windows_per_s"]
    flags = (("device", args.device), ("batches", args.batches), ("repeats", args.repeats), ("days", args.days),
             ("minutes", args.minutes))
    extra = (" --compile" if args.compile else "") + "".join(f" --{k} {v}" for k, v in flags if v is not None)
    result = {
        "metric": "detect_end_to_end_windows_per_s",
        "value": value,
        "unit": "windows/s",
        "value_meaning": f"ResNet-50 end to end (store read → spectrogram → model → probabilities) on {dev.name()}"
                         + (" in bf16 + channels_last" if cuda
                            else f" in float32, {torch.get_num_threads()} CPU threads"),
        "goal": GOAL,
        "goal_meaning": f"≥ {GOAL:,} windows/s end to end with ResNet-50 in bf16 on one H200 (issue 4); "
                        "not meant for a CPU",
        "goal_ok": (value >= GOAL) if cuda else None,
        "device": str(dev.device),
        "device_name": dev.name(),
        "precision": "bf16 autocast, channels_last" if cuda else "float32",
        "compiled": args.compile,
        "torch_threads": torch.get_num_threads(),
        "model_only_windows_per_s": {a: r["windows_per_s"] for a, r in results_model.items()},
        "end_to_end_windows_per_s": {a: r["windows_per_s"] for a, r in results_e2e.items()},
        "hours_per_station_year": {"end_to_end": {a: r["hours_per_station_year"] for a, r in results_e2e.items()},
                                   "model_only": {a: r["hours_per_station_year"] for a, r in results_model.items()}},
        "hours_per_station_year_meaning": f"windows of {WINDOW_SECONDS:g} s every {STRIDE_SECONDS:g} s in 365.25 days "
                                          f"({station_year_windows():,}) ÷ windows/s ÷ 3600, 3 components at 100 Hz, "
                                          "on this device (CPU: all torch threads)",
        "model_only": results_model,
        "end_to_end": results_e2e,
        "detect_api": api,
        "store": store_info,
        "windows": {"seconds": WINDOW_SECONDS, "stride_seconds": STRIDE_SECONDS, "samples": int(WINDOW_SECONDS * FS),
                    "demean": "per window and component", "span_minutes": minutes,
                    "station_year_windows": station_year_windows()},
        "batches": batches,
        "repeats": repeats,
        "machine_busy": busy,
        "cpu_scaling": scaling,
        "load_average": loads,
        "quick": args.quick,
        **provenance("detect", f"{' --quick' if args.quick else ''}{extra}", VERSIONS,
                     {"gpu": dev.name() if cuda else None}),
    }
    write_result(result, "detect", args.quick, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
