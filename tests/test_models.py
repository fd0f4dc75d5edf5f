"""Model interface: torchvision-equal parameter counts, forward shapes, checkpoint round trip."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from seisgrid.errors import SeisgridError  # noqa: E402  (after importorskip: models imports torch)
from seisgrid.seismic import models  # noqa: E402

# torchvision.models.resnet*(num_classes=2): the same architectures, counted there
TORCHVISION_COUNTS = {"resnet18": 11_177_538, "resnet34": 21_285_698, "resnet50": 23_512_130}


@pytest.mark.parametrize("arch", sorted(TORCHVISION_COUNTS))
def test_parameter_counts_equal_torchvision(arch):
    assert models.parameter_count(models.build(arch, num_classes=2)) == TORCHVISION_COUNTS[arch]


# timm.create_model("vit_base_patch16_224" / "vit_small_patch16_224", num_classes=2): the same ViTs, counted there
TIMM_COUNTS = {"seisformer": 85_800_194, "seisformer_small": 21_666_434}


@pytest.mark.parametrize("arch", sorted(TIMM_COUNTS))
def test_seisformer_parameter_counts_equal_timm_vit(arch):
    assert models.parameter_count(models.build(arch, num_classes=2)) == TIMM_COUNTS[arch]


def test_seisformer_takes_other_sizes_and_names_bad_ones():
    torch.manual_seed(0)
    model = models.build("seisformer_small").eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert model(x).shape == (2, 2)
        assert model(torch.randn(1, 3, 160, 192)).shape == (1, 2)  # position embeddings resampled to 10 × 12
        assert torch.allclose(model(x[:1]), model(x)[:1], atol=1e-5)  # rows independent (no batch statistics)
        with pytest.raises(ValueError, match="multiples of 16"):
            model(torch.randn(1, 3, 100, 224))
    from seisgrid.seismic.train import fold_temperature

    with torch.no_grad():
        before = model(x)
        fold_temperature(model, 2.0)
        assert torch.allclose(model(x), before / 2.0, atol=1e-5)


def test_multiply_adds_count_the_transformer_blocks_too():
    fastpath = torch.backends.mha.get_fastpath_enabled()
    resnet = models.multiply_adds(models.build("resnet50"))
    assert resnet == pytest.approx(4.09, abs=0.01)  # the literature's "4.1 GFLOPs" of ResNet-50 are multiply-adds
    small = models.multiply_adds(models.build("seisformer_small"), shape=(2, 3, 224, 224))
    assert small == pytest.approx(4.24, abs=0.01)  # per row, and not the 0.06 the fast path would show
    assert torch.backends.mha.get_fastpath_enabled() == fastpath


def test_list_models():
    listed = {m["arch"]: m for m in models.list_models()}
    assert set(listed) == set(models.ARCHITECTURES) >= {"resnet18", "resnet34", "resnet50", "tiny"}
    for arch, count in TORCHVISION_COUNTS.items():
        assert listed[arch]["parameters"] == count and listed[arch]["num_classes"] == 2
    assert listed["tiny"]["parameters"] < 100_000  # the fast test network


@pytest.mark.parametrize("arch", ["tiny", "resnet18", "resnet34", "resnet50"])
def test_forward_shape(arch):
    torch.manual_seed(0)
    model = models.build(arch).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 2) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_other_input_channels_and_classes():
    model = models.build("tiny", num_classes=3, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 64, 64)).shape == (2, 3)


def test_unknown_arch_is_reported():
    with pytest.raises(SeisgridError, match="unknown; expected one of .*resnet50"):
        models.build("vgg16")


@pytest.mark.parametrize("arch", ["tiny", "resnet18"])
def test_checkpoint_round_trip(tmp_path, arch):
    torch.manual_seed(1)
    model = models.build(arch)
    model.train()
    with torch.no_grad():  # move the BatchNorm running statistics away from their defaults
        model(torch.randn(4, 3, 224, 224))
    model.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = model(x)
    path = str(tmp_path / "sub" / "model.pt")
    config = {"arch": arch, "num_classes": 2, "in_channels": 3, "threshold": 0.42, "history": [{"epoch": 1}]}
    written = models.save_checkpoint(path, model, config)
    assert written == {"weights": path, "config": path + ".json"}

    state = torch.load(path, weights_only=True)  # tensors only: loads with the safe unpickler
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    loaded, cfg = models.load_checkpoint(path, device="cpu")
    assert cfg == config and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(SeisgridError, match="needs 'arch'"):
        models.save_checkpoint(str(tmp_path / "m.pt"), models.build("tiny"), {})
    with pytest.raises(SeisgridError, match="no checkpoint there"):
        models.load_checkpoint(str(tmp_path / "missing.pt"))


def test_pick_device():
    assert models.pick_device("cpu") == torch.device("cpu")
    assert models.pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_wavenet_is_causal_normalises_itself_and_takes_any_length():
    torch.manual_seed(0)
    model = models.build("wavenet").eval()
    assert model.receptive_field == 2048
    x = torch.randn(2, 3, 600)
    with torch.no_grad():
        assert model(x).shape == (2, 2)
        assert torch.allclose(model(x * 1000.0 + 5.0), model(x), atol=1e-4)  # scale and offset of the counts
        assert model(torch.randn(1, 3, 3000)).shape == (1, 2)
        # causality: the features at time t do not depend on samples after t
        stem = model.stem(x)
        later = x.clone()
        later[..., 300:] += 1.0
        assert torch.equal(model.stem(later)[..., :300], stem[..., :300])
        h, _ = model.blocks[5](stem)
        h2, _ = model.blocks[5](model.stem(later))
        assert torch.allclose(h2[..., :300], h[..., :300])
        assert torch.isfinite(model(torch.zeros(1, 3, 100))).all()  # an all-zero window


def test_detection_feeds_waveform_models_the_windows_themselves():
    import numpy as np

    from seisgrid.seismic.detect import probabilities
    from seisgrid.seismic.spectrogram import SpectrogramParams
    from seisgrid.seismic.train import predict_proba

    torch.manual_seed(0)
    model = models.build("wavenet").eval()
    windows = np.random.default_rng(0).normal(size=(5, 3, 500)).astype(np.float32)
    got = probabilities(model, windows, SpectrogramParams(fs=100.0), device="cpu", batch_size=2, waveform=True)
    np.testing.assert_allclose(got, predict_proba(model, windows, "cpu", batch_size=5), rtol=1e-5, atol=1e-6)
