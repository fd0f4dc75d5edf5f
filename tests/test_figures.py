"""The evaluate/train figures read well: axes, units, colour bar, titles and legends, checked on the
Matplotlib objects the builders return (the PNG is still written by the ``plot_*`` functions)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from seisgrid.seismic import metrics

PNG = b"\x89PNG\r\n\x1a\n"


def _drawn(fig):
    fig.canvas.draw()  # lays out (constrained layout) and fixes tick labels and legend positions
    return fig.canvas.get_renderer()


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def _colorbar_of(fig):
    bars = [im.colorbar for ax in _image_axes(fig) for im in ax.images if im.colorbar is not None]
    return bars[0] if bars else None


def _legend_texts(legend) -> list[str]:
    return [t.get_text() for t in legend.get_texts()]


def _tiny_spectrograms():
    """6 windows (3 earthquake, 3 noise) × 3 components × 20 frequencies × 30 times, deterministic."""
    rng = np.random.default_rng(0)
    images = np.clip(rng.normal(size=(6, 3, 20, 30)), -5, 5).astype(np.float32)
    labels = np.array([1, 0, 1, 0, 1, 0])
    stations = [f"CI.ST{i:02d}" for i in range(6)]
    times = 1.35 + 0.1 * 7.7 * np.arange(30)  # evenly spaced column centres inside 0-25 s
    freqs = np.linspace(1.0, 45.0, 20)
    return images, labels, stations, times, freqs


# -------------------------------------------------------------------------------------- spectrograms
def test_spectrogram_panel_has_axes_ticks_colorbar_and_titles(tmp_path):
    images, labels, stations, times, freqs = _tiny_spectrograms()
    fig = metrics.spectrogram_panel_figure(images, labels, n=3, component=1, stations=stations,
                                           components=["Z", "N", "E"], times=times, freqs=freqs,
                                           window_seconds=25.0, colorbar_label="normalised log power z (MAD)",
                                           value_range=(-5.0, 5.0))
    _drawn(fig)
    axes = _image_axes(fig)
    assert len(axes) == 6
    for ax in axes:
        assert "(s)" in ax.get_xlabel()
        assert ax.get_xlim() == pytest.approx((0.0, 25.0))
        half_row = (45.0 - 1.0) / 19 / 2  # the band 1-45 Hz: pixel edges half a row beyond the centres
        assert sorted(ax.get_ylim()) == pytest.approx([1.0 - half_row, 45.0 + half_row])
        assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        title = ax.get_title()
        assert "N" in title.split("·")[-1].split("\n")[0]  # component named
        assert any(s in title for s in stations)
        assert ("earthquake" in title) ^ ("noise" in title)
        assert ax.images[0].get_clim() == (-5.0, 5.0)  # one colour scale for all images
    assert sum("(Hz)" in ax.get_ylabel() for ax in axes) == 2  # the left column of each row
    # earthquakes on top: window 0, 2, 4 are earthquakes
    tops = sorted(axes, key=lambda a: -a.get_position().y0)[:3]
    assert all(t.get_title().startswith("earthquake · CI.ST0") for t in tops)
    bar = _colorbar_of(fig)
    assert bar is not None and bar.ax in fig.axes and "MAD" in bar.ax.get_ylabel()
    assert fig.get_suptitle()

    path = metrics.plot_spectrogram_panel(images, labels, tmp_path / "panel.png", n=3, stations=stations,
                                          times=times, freqs=freqs, window_seconds=25.0)
    assert pathlib.Path(path).read_bytes()[:8] == PNG


def test_spectrogram_panel_old_call_still_works(tmp_path):
    images, labels, *_ = _tiny_spectrograms()
    path = metrics.plot_spectrogram_panel(images, labels, tmp_path / "panel.png")  # the pre-existing call
    assert pathlib.Path(path).read_bytes()[:8] == PNG
    fig = metrics.spectrogram_panel_figure(images, labels)
    _drawn(fig)
    axes = _image_axes(fig)
    assert all("column" in ax.get_xlabel() for ax in axes)  # no extent known: pixel axes, said so
    assert all(ax.get_title().split("\n")[0].endswith("· Z") for ax in axes)  # component 0 of Z, N, E
    assert _colorbar_of(fig) is not None
    fig = metrics.spectrogram_panel_figure(images, labels, extent=(0, 25, 0, 50), titles=[f"w{i}" for i in range(6)])
    assert {ax.get_title() for ax in _image_axes(fig)} == {f"w{i}" for i in range(6)}
    assert all(ax.get_xlabel().endswith("(s)") for ax in _image_axes(fig))


def test_spectrogram_panel_marks_absent_component_and_short_rows():
    images, labels, stations, times, freqs = _tiny_spectrograms()
    images[0, 0] = 0.0
    fig = metrics.spectrogram_panel_figure(images[:4], labels[:4], n=3, stations=stations, times=times,
                                           freqs=freqs)
    axes = _image_axes(fig)
    assert len(axes) == 4  # 2 earthquakes + 2 noise; the empty slots are switched off
    assert any("absent" in t.get_text() for ax in axes for t in ax.texts)
    with pytest.raises(ValueError):
        metrics.spectrogram_panel_figure(images, labels[:3])


# ----------------------------------------------------------------------------------------- PR curves
def _tiny_curves():
    rng = np.random.default_rng(1)
    y = np.repeat([1, 0], 25)
    return {"STA/LTA": (y, y + rng.normal(0, 0.8, 50)), "Random Forest": (y, y + rng.normal(0, 0.4, 50))}


def test_pr_curves_explain_operating_points_and_units(tmp_path):
    curves = _tiny_curves()
    points = {"STA/LTA": (0.6, 0.75), "Random Forest": (0.8, 0.9)}
    fig = metrics.pr_curves_figure(curves, points)
    _drawn(fig)
    (ax,) = fig.axes
    assert "recall" in ax.get_xlabel() and "TP / (TP + FN)" in ax.get_xlabel()
    assert "precision" in ax.get_ylabel() and "TP / (TP + FP)" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    (legend,) = fig.legends
    texts = _legend_texts(legend)
    assert metrics.OPERATING_POINT_LABEL in texts
    for name, (y, s) in curves.items():
        ap = metrics.pr_curve(y, s)["average_precision"]
        (entry,) = [t for t in texts if t.startswith(name + ":")]
        recall, precision = points[name]
        assert f"AP {ap:.2f}" in entry and f"precision {precision:.2f}, recall {recall:.2f}" in entry
    assert "average precision" in legend.get_title().get_text()
    dots = [ln for ln in ax.lines if ln.get_marker() == "o"]
    assert sorted((float(d.get_xdata()[0]), float(d.get_ydata()[0])) for d in dots) == [(0.6, 0.75), (0.8, 0.9)]
    renderer = _drawn(fig)
    assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))  # below the axes
    assert "25 earthquake and 25 noise" in ax.get_title()

    path = metrics.plot_pr_curves(curves, tmp_path / "pr.png", points)
    assert pathlib.Path(path).read_bytes()[:8] == PNG


def test_pr_curves_without_or_with_undefined_operating_points():
    curves = _tiny_curves()
    fig = metrics.pr_curves_figure(curves)
    assert metrics.OPERATING_POINT_LABEL not in _legend_texts(fig.legends[0])
    fig = metrics.pr_curves_figure(curves, {"STA/LTA": (0.0, None), "Random Forest": (0.5, float("nan"))})
    assert not [ln for ln in fig.axes[0].lines if ln.get_marker() == "o"]
    fig = metrics.pr_curves_figure({"no quake": (np.zeros(5), np.arange(5.0))}, {"no quake": (0.0, 0.0)})
    assert not fig.legends and fig.axes[0].texts  # nothing to draw, said so


# ------------------------------------------------------------------------------------------ training
def _tiny_history(epochs=8):
    rows = []
    for e in range(1, epochs + 1):
        rows.append({"epoch": e, "train_loss": 0.7 / e, "train_accuracy": min(1.0, 0.5 + 0.08 * e),
                     "val_loss": 0.7 / e + 0.02 * max(0, e - 5) ** 2, "val_precision": min(1.0, 0.5 + 0.07 * e),
                     "val_recall": None if e == 1 else min(1.0, 0.4 + 0.1 * e), "val_f1": min(1.0, 0.45 + 0.08 * e)})
    return rows


def test_history_legend_outside_the_data_and_best_epoch_marked():
    fig = metrics.history_figure(_tiny_history(), best_epoch=5, title="tiny (split)")
    renderer = _drawn(fig)
    axes = [ax for ax in fig.axes if ax.lines]
    assert len(axes) == 2
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    for ax in axes:
        assert not box.overlaps(ax.get_window_extent(renderer))  # covers neither axes, so no curve
        for line in ax.lines:
            if len(line.get_xdata()) > 1:
                assert not box.overlaps(line.get_window_extent(renderer))
        vlines = [ln for ln in ax.lines if list(ln.get_xdata()) == [5, 5]]
        assert vlines and vlines[0].get_linestyle() == "--"
        assert ax.get_xlabel() == "epoch"
        assert [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    texts = _legend_texts(legend)
    assert metrics.BEST_EPOCH_LABEL.format(epoch=5) in texts
    assert {"train loss", "val loss", "val precision", "val recall", "val F1", "train accuracy"} <= set(texts)
    assert "best epoch 5" in fig.get_suptitle() and "tiny (split)" in fig.get_suptitle()
    assert "nats" in axes[0].get_ylabel() and axes[1].get_ylabel()


def test_history_without_val_or_best_epoch():
    rows = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": 0.5} for e in (1, 2, 3)]
    fig = metrics.history_figure(rows)
    texts = _legend_texts(fig.legends[0])
    assert texts == ["train loss", "train accuracy"]


def test_plot_history_writes_png(tmp_path):
    pytest.importorskip("torch")
    from seisgrid.seismic import train

    path = train.plot_history(_tiny_history(), str(tmp_path / "h.png"), best_epoch=5, title="t")
    assert path == str(tmp_path / "h.png") and pathlib.Path(path).read_bytes()[:8] == PNG


# ------------------------------------------------------------------------------------------ evaluate
@pytest.fixture
def captured_panel(monkeypatch):
    """The arguments evaluate passes to the panel, and the figure they make."""
    calls = []
    original = metrics.plot_spectrogram_panel

    def spy(images, labels, path, **kwargs):
        calls.append({"images": images, "labels": labels, **kwargs})
        return original(images, labels, path, **kwargs)

    monkeypatch.setattr(metrics, "plot_spectrogram_panel", spy)
    return calls


def test_evaluate_panel_from_spectrogram_store(tmp_path, captured_panel):
    import xarray as xr
    from test_spectrogram import write_window_store

    from seisgrid.seismic import evaluate, spectrogram

    write_window_store(tmp_path / "w.zarr", n=10, chunk=5)
    spectrogram.spectrograms(str(tmp_path / "w.zarr"), str(tmp_path / "s.zarr"), method="numpy", progress=False)
    ds = xr.open_zarr(str(tmp_path / "w.zarr"), consolidated=False)
    path = evaluate._panel(ds, str(tmp_path / "s.zarr"), tmp_path / "spectrograms.png", 100.0)
    assert pathlib.Path(path).read_bytes()[:8] == PNG
    (call,) = captured_panel
    assert call["window_seconds"] == 25.0 and call["value_range"] == (-5.0, 5.0)
    assert call["freqs"][0] == pytest.approx(1.0) and call["freqs"][-1] == pytest.approx(45.0)
    assert call["times"][0] == pytest.approx(1.35) and call["times"][-1] == pytest.approx(23.65)
    assert call["components"] == ["Z", "N", "E"] and "MAD" in call["colorbar_label"]
    idx = np.r_[np.flatnonzero(ds.label.values == 1)[:3], np.flatnonzero(ds.label.values == 0)[:3]]
    assert call["stations"] == [f"CI.ST{i % 3:02d}" for i in idx]
    fig = metrics.spectrogram_panel_figure(**{k: v for k, v in call.items()})
    for ax in _image_axes(fig):
        assert "CI.ST0" in ax.get_title() and "· Z" in ax.get_title()
        assert ax.get_xlim() == pytest.approx((0.0, 25.0)) and ax.get_xlabel().endswith("(s)")


def test_evaluate_panel_from_waveforms(tmp_path, captured_panel):
    import xarray as xr
    from test_spectrogram import write_window_store

    from seisgrid.seismic import evaluate

    write_window_store(tmp_path / "w.zarr", n=10, chunk=5)
    ds = xr.open_zarr(str(tmp_path / "w.zarr"), consolidated=False)
    evaluate._panel(ds, None, tmp_path / "spectrograms.png", 100.0)
    (call,) = captured_panel
    assert call["freqs"][0] == 0.0 and call["freqs"][-1] == pytest.approx(50.0)
    assert 0 < call["times"][0] < call["times"][-1] < 25.0 and "PSD" in call["colorbar_label"]
    assert call["stations"][0].startswith("CI.ST")
