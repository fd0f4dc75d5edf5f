"""Spectrogram images (seisgrid.seismic.spectrogram): maths, numpy/torch agreement, laziness, the store."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from helpers import has_torch, raise_if_dask_computes, requires_torch

from seisgrid import storage
from seisgrid.errors import ConfigError, StorageError
from seisgrid.seismic import spectrogram as sg

pytestmark = pytest.mark.filterwarnings(
    "ignore:The data type .* does not have a Zarr V3 specification",  # numpy <U strings of the schema
    "ignore:Failed to open Zarr store with consolidated metadata",
)

FS = 100.0
N_SAMPLES = 2500
P = sg.SpectrogramParams()  # the documented defaults, independent of the user's configuration
LOOSE = sg.SpectrogramParams(clip=1e6)  # no clipping: the location tests look for a unique maximum

# Stated tolerance (module docstring): float32 images within 1e-3, stored float16 values identical for
# at least 99.9 % of the pixels and otherwise one rounding step apart.
ATOL = 1e-3
IDENTICAL = 0.999


def _noise(n, seed=0, sigma=1.0):
    rng = np.random.default_rng(seed)
    return (sigma * rng.standard_normal((n, 3, N_SAMPLES))).astype(np.float32)


def _mixed_windows(n=12, seed=1):
    """Noise of different amplitudes, sines, a chirp-like transient, absent components."""
    rng = np.random.default_rng(seed)
    t = np.arange(N_SAMPLES) / FS
    x = _noise(n, seed) * rng.uniform(1, 5000, size=(n, 1, 1)).astype(np.float32)
    x[0] += (2e4 * np.sin(2 * np.pi * 7.3 * t)).astype(np.float32)
    x[1, 0] += (3e3 * np.exp(-np.clip(t - 10, 0, None)) * (t > 10) * np.sin(2 * np.pi * 12 * t)).astype(np.float32)
    x[2, 1:] = 0  # single-component record
    x[3, 2] = 0
    return x


def _row(f0):
    return (f0 - P.f_min) * (P.size - 1) / (P.f_max - P.f_min)


# ---------------------------------------------------------------------------------------------- maths
def test_defaults_give_224_frames_and_the_documented_axes():
    assert P.n_frames(N_SAMPLES) == 224
    freqs, times = P.freqs(), P.times(N_SAMPLES)
    assert freqs[0] == pytest.approx(1.0) and freqs[-1] == pytest.approx(45.0)
    assert np.all(np.diff(freqs) > 0)
    assert times[0] == pytest.approx(1.35) and times[-1] == pytest.approx(23.65)
    # the configured defaults (seisgrid.yaml) are these
    assert sg.SpectrogramParams.from_config() == P
    # the window is scipy's periodic Hann
    from scipy.signal import get_window

    np.testing.assert_allclose(P.window(), get_window("hann", P.n_fft), atol=1e-7)


def test_shapes_and_dtypes_numpy():
    out = sg.spectrogram_numpy(_noise(5), P)
    assert out.shape == (5, 3, 224, 224) and out.dtype == np.float32
    assert np.isfinite(out).all() and np.abs(out).max() <= P.clip
    stored = sg.to_store_numpy(out)
    assert stored.dtype == np.float16
    np.testing.assert_array_equal(stored.astype(np.float32), np.round(out * 256) / 256)


@requires_torch
def test_shapes_and_dtypes_torch():
    import torch

    x = torch.from_numpy(_noise(4))
    out = sg.spectrogram_torch(x, P)
    assert tuple(out.shape) == (4, 3, 224, 224) and out.dtype == torch.float32 and out.device == x.device
    assert sg.to_store_torch(out).dtype == torch.float16
    # float64 input is computed in float32 too
    assert sg.spectrogram_torch(x.double(), P).dtype == torch.float32


@pytest.mark.parametrize("f0", [2.5, 10.0, 31.0])
def test_sine_energy_in_its_row(f0):
    t = np.arange(N_SAMPLES) / FS
    x = _noise(1, seed=3, sigma=0.01)
    x[0, 0] += np.sin(2 * np.pi * f0 * t).astype(np.float32)
    img = sg.spectrogram_numpy(x, LOOSE)[0, 0]
    row = int(np.argmax(img.mean(axis=1)))
    assert abs(row - _row(f0)) <= 1.0, (row, _row(f0))
    # the same with the default clipping: the sine's row is at the top of the scale
    clipped = sg.spectrogram_numpy(x, P)[0, 0]
    assert clipped[round(_row(f0))].mean() == pytest.approx(P.clip, abs=0.05)


@pytest.mark.parametrize("sample", [400, 1255, 2100])
def test_impulse_energy_in_its_column(sample):
    x = _noise(1, seed=4, sigma=0.01)
    x[0, 1, sample] += 100.0
    img = sg.spectrogram_numpy(x, LOOSE)[0, 1]
    col = int(np.argmax(img.mean(axis=0)))
    expected = (sample - P.n_fft // 2) / P.hop  # the frame centred on the impulse
    assert abs(col - expected) <= 1, (col, expected)
    assert abs(P.times(N_SAMPLES)[col] - sample / FS) <= 0.1 + 1e-9
    # broadband: every row of that column is far above the median
    assert np.all(img[:, col] > 3)


def test_absent_components_stay_zero_numpy():
    x = _mixed_windows()
    out = sg.spectrogram_numpy(x, P)
    assert np.all(out[2, 1:] == 0) and np.all(out[3, 2] == 0)
    assert np.abs(out[2, 0]).max() > 0 and np.abs(out[3, :2]).max() > 0


def test_other_window_lengths_are_interpolated_in_time():
    x = np.random.default_rng(5).standard_normal((2, 3, 3000)).astype(np.float32)
    out = sg.spectrogram_numpy(x, P)
    assert out.shape == (2, 3, 224, 224)
    times = P.times(3000)
    assert times[0] == pytest.approx(1.35) and times[-1] == pytest.approx(28.65)


def test_invalid_parameters_are_reported():
    with pytest.raises(ConfigError, match="Nyquist"):
        sg.SpectrogramParams(f_max=50.0)
    with pytest.raises(ConfigError, match="shorter than n_fft"):
        sg.spectrogram_numpy(np.zeros((1, 3, 100), np.float32), P)
    with pytest.raises(ConfigError, match="expected \\(window, component, sample\\)"):
        sg.spectrogram_numpy(np.zeros((3, 2500), np.float32), P)


# -------------------------------------------------------------------------------------- numpy vs torch
def _agreement(a: np.ndarray, b: np.ndarray) -> dict:
    sa, sb = sg.to_store_numpy(a), sg.to_store_numpy(b)
    steps = np.abs(sa.astype(np.float32) - sb.astype(np.float32)) / sg.STORE_STEP
    return {"max_abs": float(np.abs(a - b).max()), "identical": float((sa == sb).mean()),
            "max_steps": float(steps.max())}


def _check_agreement(device: str):
    import torch

    x = _mixed_windows()
    a = sg.spectrogram_numpy(x, P)
    tb = sg.spectrogram_torch(torch.from_numpy(x).to(device), P)
    assert tb.device.type == device
    b = tb.cpu().numpy()
    stats = _agreement(a, b)
    assert stats["max_abs"] <= ATOL, stats
    assert stats["identical"] >= IDENTICAL, stats
    assert stats["max_steps"] <= 1, stats
    # the stored values made on the device are the same as those made from the float32 images on the host
    np.testing.assert_array_equal(sg.to_store_torch(tb).cpu().numpy(), sg.to_store_numpy(b))
    assert np.all(b[2, 1:] == 0) and np.all(b[3, 2] == 0)
    return stats


@requires_torch
def test_numpy_and_torch_agree_cpu():
    _check_agreement("cpu")


@pytest.mark.gpu
@requires_torch
def test_numpy_and_torch_agree_cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    _check_agreement("cuda")


# ----------------------------------------------------------------------------------------------- stores
def write_window_store(path, n=10, seed=7, chunk=4, strings="fixed"):
    """A tiny labelled-window store following docs/windows-schema.md (``strings``: "fixed" numpy ``<U``
    or "vlen" Python objects, which read back as variable-length strings)."""
    rng = np.random.default_rng(seed)
    wave = _mixed_windows(n, seed)
    present = np.any(wave != 0, axis=-1)
    labels = (np.arange(n) % 2).astype(np.int8)
    ds = xr.Dataset(
        {
            "waveform": (("window", "component", "sample"), wave),
            "present": (("window", "component"), present),
            "label": ("window", labels),
            "p_index": ("window", np.where(labels == 1, 1500, -1).astype(np.int32)),
            "s_index": ("window", np.where(labels == 1, 1900, -1).astype(np.int32)),
            "source": ("window", np.array(["stead-eqt-sample", "phasenet-ncedc"] * (n // 2) + ["x"] * (n % 2))),
            "region": ("window", np.array(["southern-california"] * n)),
            "network": ("window", np.array(["CI"] * n)),
            "station": ("window", np.array([f"ST{i % 3:02d}" for i in range(n)])),
            "event_id": ("window", np.array([f"ev{i // 2}" for i in range(n)])),
            "start_time": ("window", np.array(["2020-01-01T00:00:00"] * (n - 1) + ["NaT"], dtype="datetime64[ns]")),
            "magnitude": ("window", np.where(labels == 1, rng.uniform(1, 3, n), np.nan).astype(np.float32)),
            "snr_db": ("window", np.full(n, np.nan, np.float32)),
            "split": ("window", np.array((["train"] * 6 + ["val"] * 2 + ["test"] * 2) * (n // 10 + 1))[:n]),
            "split_region": ("window", np.array(["train"] * (n - 3) + ["test"] * 3)),
            "augmented": ("window", np.zeros(n, bool)),
        },
        coords={"component": ["Z", "N", "E"]},
        attrs={"sampling_rate": FS, "window_seconds": 25.0, "noise_margin_seconds": 5.0,
               "resampling": "scipy.signal.resample_poly", "components": ["Z", "N", "E"],
               "counts": {"stead-eqt-sample": n // 2}},
    )
    chunked = ds.chunk({"window": chunk})
    if strings == "vlen":
        for name, var in list(ds.variables.items()):
            if var.dtype.kind == "U":  # in memory: xarray would load Dask arrays of objects to encode them
                chunked[name] = var.astype(object)
    chunked.to_zarr(storage.zarr_store(str(path)), mode="w", zarr_format=3, consolidated=False)
    return ds


@pytest.mark.parametrize("strings", ["fixed", "vlen"])
def test_building_the_graph_computes_nothing(tmp_path, strings):
    write_window_store(tmp_path / "windows.zarr", n=10, strings=strings)
    with raise_if_dask_computes() as sched:
        windows = xr.open_zarr(storage.zarr_store(str(tmp_path / "windows.zarr")), zarr_format=3)
        out = sg.spectrogram_dataset(windows, method="numpy", batch=3)
        assert out["image"].shape == (10, 3, 224, 224) and out["image"].dtype == np.float16
        assert out["image"].data.chunks[0] == (3, 3, 3, 1)
        out.to_zarr(storage.zarr_store(str(tmp_path / "spec.zarr")), mode="w", zarr_format=3,
                    compute=False, consolidated=False)
        if has_torch:
            sg.spectrogram_dataset(windows, method="torch", batch=3)
    assert sched.total_computes == 0


def test_bad_window_store_is_reported(tmp_path):
    with pytest.raises(StorageError, match="waveform"):
        sg.spectrogram_dataset(xr.Dataset({"label": ("window", np.zeros(3, np.int8))}))
    with pytest.raises(ConfigError, match="method"):
        sg.spectrogram_dataset(xr.Dataset({"waveform": (("window", "component", "sample"),
                                                       np.zeros((1, 3, 2500), np.float32))}), method="jax")
    with pytest.raises(ConfigError, match="fs is the window store's sampling_rate"):  # before the store is read
        sg.spectrograms(str(tmp_path / "none.zarr"), str(tmp_path / "out.zarr"), fs=50.0)
    with pytest.raises(ConfigError, match=r"unknown options \['nfft'\]"):
        sg.spectrograms(str(tmp_path / "none.zarr"), str(tmp_path / "out.zarr"), nfft=256)


def _check_output(out_path, windows: xr.Dataset, method: str):
    spec = xr.open_zarr(storage.zarr_store(str(out_path)), zarr_format=3)
    img = spec["image"]
    assert img.dims == ("window", "component", "freq", "time")
    assert img.shape == (10, 3, 224, 224) and img.dtype == np.float16
    assert spec.attrs["implementation"] == method
    assert spec.attrs["band_hz"] == [1.0, 45.0] and spec.attrs["stft_n_fft"] == 270 and spec.attrs["stft_hop"] == 10
    assert spec.attrs["windows_attrs"]["sampling_rate"] == FS
    assert list(spec["component"].values) == ["Z", "N", "E"]
    np.testing.assert_allclose(spec["freq"].values, P.freqs(), rtol=1e-6)
    for name in windows.data_vars:
        if name == "waveform":
            assert name not in spec
            continue
        np.testing.assert_array_equal(spec[name].values, windows[name].values, err_msg=name)
    values = img.values
    expected = sg.to_store_numpy(sg.spectrogram_numpy(windows["waveform"].values, P))
    assert (values == expected).mean() >= IDENTICAL
    assert np.all(values[~spec["present"].values] == 0)
    return spec


def test_end_to_end_numpy(tmp_path):
    windows = write_window_store(tmp_path / "windows.zarr", n=10)
    summary = sg.spectrograms(str(tmp_path / "windows.zarr"), str(tmp_path / "spec.zarr"), method="numpy",
                              progress=False, batch=4)
    assert summary["windows"] == 10 and summary["method"] == "numpy" and summary["device"] == "cpu"
    assert summary["shape"] == [10, 3, 224, 224] and summary["output"] == str(tmp_path / "spec.zarr")
    assert summary["windows_per_s"] > 0
    spec = _check_output(tmp_path / "spec.zarr", windows, "numpy")
    assert spec["image"].encoding["chunks"] == (4, 3, 224, 224)


@requires_torch
def test_end_to_end_torch_on_a_cluster(tmp_path, dask_client, capsys):
    windows = write_window_store(tmp_path / "windows.zarr", n=10)
    summary = sg.spectrograms(str(tmp_path / "windows.zarr"), str(tmp_path / "spec.zarr"), method="torch",
                              client=dask_client, progress=True, batch=5)
    assert summary["method"] == "torch" and summary["windows"] == 10
    assert summary["device"] in ("cpu", "cuda", "cpu,cuda")
    captured = capsys.readouterr()
    assert captured.out == ""  # the progress bar goes to stderr
    _check_output(tmp_path / "spec.zarr", windows, "torch")
