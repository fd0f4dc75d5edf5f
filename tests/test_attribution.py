"""Per-frequency-band importance (``seisgrid.seismic.attribution``): a model that only looks at 8–16 Hz must
get (nearly) all importance there, with both estimators; table shape; ``explain`` end to end on a tiny
spectrogram store written here (CPU, deterministic, seconds)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pd = pytest.importorskip("pandas")
xr = pytest.importorskip("xarray")

from seisgrid import storage  # noqa: E402  (after the importorskips: models imports torch)
from seisgrid.errors import ConfigError, SeisgridError  # noqa: E402
from seisgrid.seismic import attribution, models  # noqa: E402
from seisgrid.seismic.windowstore import open_dataset  # noqa: E402

SIZE = 224
FREQS = 1.0 + np.arange(SIZE) * 44.0 / (SIZE - 1)  # the spectrogram rows: 1–45 Hz, linear
BAND = (8.0, 16.0)
BAND_LABEL = "8–16 Hz"


class BandModel(torch.nn.Module):
    """Logit of 'earthquake' = gain × (mean of the 8–16 Hz rows of all components and columns − 0.5).

    Fixed weights (a buffer, saved in the checkpoint): it sees nothing outside the band.
    """

    def __init__(self, num_classes: int = 2, in_channels: int = 3):
        super().__init__()
        mask = torch.zeros(SIZE)
        mask[(FREQS >= BAND[0]) & (FREQS < BAND[1])] = 1.0
        self.register_buffer("mask", mask)
        self.gain = torch.nn.Parameter(torch.tensor(4.0))

    def forward(self, x):
        band_mean = (x.mean(dim=(1, 3)) * self.mask).sum(dim=1) / self.mask.sum()
        z = self.gain * (band_mean - 0.5)
        return torch.stack([-z / 2, z / 2], dim=1)


def make_images(n: int = 24, seed: int = 0, noise_dip: float = 0.0):
    """Noise: N(0, 1) images (minus ``noise_dip`` in the 8–16 Hz rows). Earthquakes: N(0, 1) plus +3 in
    the 8–16 Hz rows over 100 columns. Labels alternate 0, 1, 0, 1, ..."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, SIZE, SIZE)).astype(np.float32)
    y = np.arange(n) % 2
    rows = (FREQS >= BAND[0]) & (FREQS < BAND[1])
    for i in np.flatnonzero(y == 1):
        c0 = rng.integers(0, SIZE - 100)
        x[i][:, rows, c0:c0 + 100] += 3.0
    for i in np.flatnonzero(y == 0):
        x[i][:, rows, :] -= noise_dip
    return x, y


@pytest.fixture
def band_arch(monkeypatch):
    monkeypatch.setitem(models.ARCHITECTURES, "band-test", BandModel)
    return "band-test"


def test_band_rows_cover_the_image_rows():
    rows = attribution.band_rows([(1, 2), (2, 4), (4, 8), (8, 16), (16, 32), (32, 45)], FREQS)
    joined = np.concatenate(rows)
    assert np.array_equal(np.sort(joined), np.arange(SIZE))  # every row in exactly one band
    assert rows[0][0] == 0 and rows[-1][-1] == SIZE - 1
    assert np.allclose(FREQS[rows[3]].min(), 8, atol=0.2) and FREQS[rows[3]].max() < 16
    with pytest.raises(ConfigError, match="no image row"):
        attribution.band_rows([(46, 48)], FREQS)


@pytest.mark.parametrize("baseline", ["median", "zero"])
def test_occlusion_finds_the_only_band_the_model_sees(baseline):
    x, y = make_images()
    table = attribution.band_importance(BandModel(), x, y, baseline=baseline, batch_size=7, bootstrap=200,
                                        device="cpu")
    assert list(table.columns) == attribution.COLUMNS
    assert table.shape == (12, len(attribution.COLUMNS))  # 6 default bands × 2 groups
    assert set(table["group"]) == {"earthquake", "noise"}
    assert (table["n"] == 12).all()
    # both baselines are the noise images' typical level: occluding noise windows changes (almost) nothing
    noise = table[table["group"] == "noise"]
    assert noise["importance"].abs().max() < 0.02
    for group in ("earthquake",):
        sub = table[table["group"] == group].set_index("band")
        assert sub.loc[BAND_LABEL, "share"] > 0.99, sub
        assert sub.loc[BAND_LABEL, "importance"] > 0.05
        others = sub.drop(index=BAND_LABEL)
        assert np.allclose(others["importance"], 0, atol=1e-6)
        assert sub.loc[BAND_LABEL, "ci_low"] <= sub.loc[BAND_LABEL, "importance"] <= sub.loc[BAND_LABEL, "ci_high"]
    eq = table[(table["group"] == "earthquake") & (table["band"] == BAND_LABEL)].iloc[0]
    assert eq["importance"] > 0.3  # occluding the event's band removes most of P(earthquake)
    assert table.attrs["p_mean"]["earthquake"] > 0.8
    assert table.attrs["p_mean"]["noise"] < 0.2


def test_noise_windows_report_the_rise_of_p_earthquake():
    # noise whose 8–16 Hz rows sit 2 units below the images' median: replacing them by 0 (the zero
    # baseline) raises P(earthquake); nothing else changes
    x, y = make_images(noise_dip=2.0)
    table = attribution.band_importance(BandModel(), x, y, baseline="zero", bootstrap=100, device="cpu")
    noise = table[table["group"] == "noise"].set_index("band")
    assert noise.loc[BAND_LABEL, "importance"] > 0.01 and noise.loc[BAND_LABEL, "share"] > 0.99
    assert noise.loc[BAND_LABEL, "ci_low"] > 0
    assert np.allclose(noise.drop(index=BAND_LABEL)["importance"], 0, atol=1e-6)


def test_integrated_gradients_puts_the_attribution_in_the_band():
    x, y = make_images(n=8)
    table = attribution.band_importance(BandModel(), x, y, method="integrated_gradients", baseline="zero",
                                        ig_steps=8, bootstrap=50, device="cpu")
    eq = table[table["group"] == "earthquake"].set_index("band")
    assert eq.loc[BAND_LABEL, "share"] > 0.99
    assert np.allclose(eq.drop(index=BAND_LABEL)["importance"], 0, atol=1e-6)
    # completeness: the summed attribution of a window ≈ P(x) − P(baseline)
    model = BandModel()
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(x[y == 1])), 1)[:, 1].mean().item()
        p_base = torch.softmax(model(torch.zeros(1, 3, SIZE, SIZE)), 1)[0, 1].item()
    assert eq["importance"].sum() == pytest.approx(p - p_base, abs=0.02)


def test_unlabelled_windows_and_custom_bands_with_a_dataarray():
    x, _ = make_images(n=6)
    da = xr.DataArray(x.astype(np.float16), dims=("window", "component", "freq", "time"),
                      coords={"freq": FREQS.astype(np.float32)})
    table = attribution.band_importance(BandModel(), da, bands=[[1, 8], [8, 16], [16, 45]], bootstrap=0,
                                        device="cpu")
    assert table.shape == (3, len(attribution.COLUMNS))
    assert set(table["group"]) == {"all"}
    assert table.set_index("band").loc[BAND_LABEL, "share"] > 0.99


def test_any_architecture_untrained_resnet18():
    x, y = make_images(n=4)
    table = attribution.band_importance(models.build("resnet18").eval(), x, y, batch_size=4, bootstrap=20,
                                        device="cpu")
    assert table.shape == (12, len(attribution.COLUMNS))
    assert np.isfinite(table["importance"]).all() and (table["importance"].abs() <= 1).all()


def test_bad_settings_are_reported():
    x, y = make_images(n=2)
    with pytest.raises(ConfigError, match="method"):
        attribution.band_importance(BandModel(), x, y, method="lime")
    with pytest.raises(ConfigError, match="baseline"):
        attribution.band_importance(BandModel(), x, y, baseline="mean")
    with pytest.raises(ConfigError, match="labels"):
        attribution.band_importance(BandModel(), x, y[:1])
    with pytest.raises(ConfigError, match="expected"):
        attribution.band_importance(BandModel(), x[0], y)


def write_store(path, n: int = 40, seed: int = 1) -> str:
    x, y = make_images(n=n, seed=seed)
    split = np.where(np.arange(n) < n // 2, "train", "test")
    ds = xr.Dataset({"image": (("window", "component", "freq", "time"), x.astype(np.float16)),
                     "label": ("window", y.astype(np.int8)),
                     "split_region": ("window", split.astype(str))},
                    coords={"component": ["Z", "N", "E"], "freq": FREQS.astype(np.float32)})
    url = str(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The data type .* does not have a Zarr V3 specification")
        ds.chunk({"window": 16}).to_zarr(storage.zarr_store(url), mode="w", zarr_format=3, consolidated=False)
    return url


def test_explain_end_to_end(tmp_path, band_arch):
    store = write_store(tmp_path / "spec.zarr")
    model_path = str(tmp_path / "model.pt")
    models.save_checkpoint(model_path, BandModel(), {"arch": band_arch, "num_classes": 2})
    out = tmp_path / "explain"
    result = attribution.explain(model_path, store, str(out), max_windows=12, device="cpu", bootstrap=100)
    assert result["windows"] == 12 and result["windows_per_group"] == {"earthquake": 6, "noise": 6}
    assert result["subset"] == "test" and result["arch"] == band_arch
    assert result["top_band"]["earthquake"] == BAND_LABEL
    eq = [r for r in result["bands"] if r["group"] == "earthquake"]
    assert max(eq, key=lambda r: r["importance"])["band"] == BAND_LABEL and eq[3]["share"] > 0.99
    assert len(result["bands"]) == 12
    for name in ("markdown", "json", "png"):
        assert (out / f"band_importance.{name if name != 'markdown' else 'md'}").exists()
    png = (out / "band_importance.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = (out / "band_importance.md").read_text()
    assert BAND_LABEL in md and "earthquake (n=6)" in md and md.count("\n|") >= 7
    saved = json.loads((out / "band_importance.json").read_text())
    assert saved["top_band"]["earthquake"] == BAND_LABEL and len(saved["bands"]) == 12
    json.dumps(result)  # JSON-serialisable as it is


def test_explain_selects_the_subset_and_balances(tmp_path):
    store = write_store(tmp_path / "spec.zarr", n=40)
    ds = open_dataset(store, consolidated=False)
    idx = attribution.select_windows(ds, "split_region", "test", 10, seed=0)
    assert len(idx) == 10 and (idx >= 20).all()
    assert ds["label"].values[idx].sum() == 5
    assert np.array_equal(idx, attribution.select_windows(ds, "split_region", "test", 10, seed=0))
    assert len(attribution.select_windows(ds, "split_region", "all", None, seed=0)) == 40
    with pytest.raises(SeisgridError, match="no window"):
        attribution.select_windows(ds, "split_region", "val", None, seed=0)
    with pytest.raises(SeisgridError, match="split column"):
        attribution.select_windows(ds, "split", "test", None, seed=0)


def test_explain_runs_as_a_task_on_a_dask_worker(tmp_path, dask_client):
    store = write_store(tmp_path / "spec.zarr", n=8)
    model_path = str(tmp_path / "r18.pt")
    models.save_checkpoint(model_path, models.build("resnet18"), {"arch": "resnet18", "num_classes": 2})
    result = attribution.explain(model_path, store, None, subset="all", max_windows=4, device="cpu",
                                 client=dask_client, bands=[[1, 10], [10, 45]], bootstrap=10)
    assert result["arch"] == "resnet18" and result["windows"] == 4 and len(result["bands"]) == 4
    assert result["outputs"] == {}
