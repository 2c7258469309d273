"""Backbones: feature shapes and grids, weights loading and its errors, save/load round trip."""

from __future__ import annotations

import pytest
import torch

from vccv_gpu.backbones import ARCHITECTURES, BackboneConfig, FeatureExtractor, MissingWeights, build_cnn, model_config

TINY = BackboneConfig("tiny", "tiny", size=112, num_segments=3)


def _clip(config: BackboneConfig, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shape = (batch, config.num_segments, 3, config.size, config.size)
    iframes = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    residuals = (torch.randn(shape, generator=g) * 20).half()
    return iframes, residuals


@pytest.mark.parametrize("name,size", [("tiny", 112), ("tiny", 100), ("resnet18", 224), ("resnet18", 200)])
def test_grid_matches_the_network(name: str, size: int) -> None:
    config = BackboneConfig(name, name, size=size, num_segments=2)
    out = build_cnn(name).eval()(torch.zeros(1, 3, size, size))
    assert out.shape[1] == ARCHITECTURES[name][0] == config.d_i == config.d_r
    assert tuple(out.shape[2:]) == config.grid


def test_features_are_channel_last_per_frame() -> None:
    extractor = FeatureExtractor(TINY).eval()
    iframes, residuals = _clip(TINY)
    with torch.no_grad():
        v_i, a_r = extractor(iframes, residuals)
        assert v_i.shape == (2, 3, 7, 7, 128) and a_r.shape == (2, 3, 7, 7, 128)
        # frame (1, 2) alone gives the same features: no mixing across clips or frames
        v_one, a_one = extractor(iframes[1:2, 2:3], residuals[1:2, 2:3])
    torch.testing.assert_close(v_one[0, 0], v_i[1, 2], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a_one[0, 0], a_r[1, 2], rtol=1e-5, atol=1e-5)
    # the residual network sees the residuals, not the frames
    with torch.no_grad():
        _, a_other = extractor(iframes, residuals * 2)
    assert not torch.allclose(a_other, a_r)


def test_model_config_follows_the_backbones() -> None:
    config = model_config(BackboneConfig("resnet50", "resnet18", size=224, num_segments=20), vocab_size=30, hidden=64)
    assert (config.d_i, config.d_r, config.grid, config.n_frames, config.hidden) == (2048, 512, (7, 7), 20, 64)
    with pytest.raises(ValueError, match="d_i"):
        model_config(TINY, vocab_size=30, d_i=5)


def test_mismatched_strides_are_refused() -> None:
    with pytest.raises(ValueError, match="different grids"):
        FeatureExtractor(BackboneConfig("resnet18", "tiny", size=112))


@pytest.mark.parametrize("field,value", [("iframe", "vgg"), ("residual_mode", "all"), ("size", 8), ("num_segments", 0)])
def test_bad_config(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field.split("_")[0]):
        BackboneConfig(**{field: value})


def test_save_load_round_trip(tmp_path) -> None:
    extractor = FeatureExtractor(TINY).eval()
    for p in extractor.parameters():  # not the initial values, so loading must really copy them
        torch.nn.init.normal_(p, std=0.05)
    path = extractor.save(tmp_path / "b.safetensors")
    loaded = FeatureExtractor.load(path)
    assert loaded.config == TINY
    iframes, residuals = _clip(TINY)
    with torch.no_grad():
        for a, b in zip(extractor(iframes, residuals), loaded(iframes, residuals)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_tiny_blocks_compute_torchvisions_basic_block() -> None:
    from torchvision.models.resnet import BasicBlock

    from vccv_gpu.backbones import _BasicBlock

    torch.manual_seed(0)
    downsample = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 1, 2, bias=False), torch.nn.BatchNorm2d(16))
    ours = _BasicBlock(8, 16, 2, downsample).eval()
    theirs = BasicBlock(8, 16, 2, downsample).eval()
    for p in ours.parameters():
        torch.nn.init.normal_(p)
    theirs.load_state_dict(ours.state_dict())  # the same parameter names
    x = torch.randn(2, 8, 9, 9)
    torch.testing.assert_close(ours(x), theirs(x))


def test_torchvision_weight_files_load(tmp_path) -> None:
    import torchvision

    net = torchvision.models.resnet18()
    torch.save(net.state_dict(), tmp_path / "r18.pth")  # with the classifier, which is ignored
    cnn = build_cnn("resnet18", tmp_path / "r18.pth")
    torch.testing.assert_close(cnn[0].weight, net.conv1.weight)
    torch.testing.assert_close(cnn[7][1].conv2.weight, net.layer4[1].conv2.weight)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises((ValueError, RuntimeError)):
        build_cnn("resnet18", tmp_path / "wrong.pth")


def test_imagenet_weights_are_downloaded_the_torchvision_way(tmp_path, monkeypatch) -> None:
    import torchvision.models as tvm

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing cached
    state = tvm.resnet18(weights=None).state_dict()
    asked = []

    def download(url, **kwargs):  # stands for the network
        asked.append((url, kwargs.get("check_hash")))
        return state

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", download)
    cnn = build_cnn("resnet18", "imagenet")
    assert asked == [(tvm.ResNet18_Weights.DEFAULT.url, True)]
    torch.testing.assert_close(cnn[0].weight, state["conv1.weight"])


def test_missing_weights_say_where(tmp_path, monkeypatch) -> None:
    import urllib.error

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(MissingWeights, match=r"resnet18-.*\.pth.*could not be downloaded.*no network.*"
                                             r"--backbone-weights none"):
        build_cnn("resnet18", "imagenet")
    with pytest.raises(MissingWeights, match="not found"):
        build_cnn("tiny", tmp_path / "nothing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="junk.safetensors"):
        FeatureExtractor.load(tmp_path / "junk.safetensors")
