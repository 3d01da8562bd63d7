"Tests of gravityaudit.models: encoders, fusions, named architectures, registry, weights files, MC dropout."
import subprocess, sys
import pytest
import torch
import torch.nn.functional as F
from gravityaudit.models import (create_model, list_models, register_model, is_model, MODEL_REGISTRY, create_encoder,
                                 TimmEncoder, GlitchNet, SmallCNN, AttentionFusion, tile_views, count_parameters,
                                 mc_dropout_probs, predictive_entropy)
from gravityaudit.taxonomy import IMAGE_SHAPE

SHIPPED = ["merged_cnn", "resnet18_attention", "resnet18_concat", "resnet18_mean", "resnet18_single",
           "vit_tiny_attention", "vit_small_attention", "small_cnn_attention"]


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    return torch.rand(2, 4, 1, *IMAGE_SHAPE)


def test_registry_lists_the_shipped_architectures():
    names = list_models()
    for name in SHIPPED: assert name in names and is_model(name)
    assert names == sorted(names)
    assert list_models("vit_*") == ["vit_small_attention", "vit_tiny_attention"]


@pytest.mark.parametrize("name", [n for n in SHIPPED if not n.startswith("vit")])
@torch.no_grad()
def test_named_cnn_architectures_give_logits_and_features(name, batch):
    model = create_model(name, num_classes=7).eval()
    logits = model(batch)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    features = model.forward_features(batch)
    assert features.shape == (2, model.feature_dim)
    assert model.config["name_or_encoder"] == name


@torch.no_grad()
def test_vits_at_224_and_native_size():
    vit = create_model("vit_tiny_attention", image_size=224).eval()
    assert vit(torch.rand(1, 4, 1, 224, 224)).shape == (1, 22)
    assert vit.feature_dim == 192
    native = create_model("vit_small_attention").eval()           # dynamic size + padding: 140 x 170 works
    assert native(torch.rand(1, 4, 1, *IMAGE_SHAPE)).shape == (1, 22)
    assert native.feature_dim == 384


@torch.no_grad()
def test_attention_weights_are_a_distribution_over_views(batch):
    model = create_model("small_cnn_attention").eval()
    model(batch)
    w = model.view_weights
    assert w.shape == (2, 4)
    assert torch.all(w >= 0)
    torch.testing.assert_close(w.sum(1), torch.ones(2))
    fusion = AttentionFusion(8, 4, num_heads=2)
    tokens = torch.zeros(1, 4, 8); tokens[0, 2] = 5.0                # one view stands out: weights change
    _, w_flat = fusion(torch.zeros(1, 4, 8)); _, w_peak = fusion(tokens)
    assert not torch.allclose(w_flat, w_peak)


@torch.no_grad()
def test_fusion_dimensions(batch):
    concat, mean = create_model("small_cnn_concat").eval(), create_model("small_cnn_mean").eval()
    assert concat.feature_dim == 4 * mean.feature_dim
    assert concat.view_weights is None and (concat(batch), concat.view_weights)[1] is None
    # mean fusion: permuting the views does not change the output
    torch.testing.assert_close(mean(batch), mean(batch[:, [3, 2, 1, 0]]), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_single_view_models(batch):
    model = create_model("resnet18_single", view=2.0).eval()
    assert model.durations == (2.0,) and model.fusion_name is None
    torch.testing.assert_close(model(batch[:, 2]), model(batch))      # a 4-view batch: it takes its own view
    torch.testing.assert_close(model(batch[:, 2:3]), model(batch[:, 2]))
    other = create_model("small_cnn", fusion=None, view=0.5).eval()
    assert other(batch[:, 0]).shape == (2, 22)
    with pytest.raises(ValueError, match="unknown view duration 3.0"): create_model("small_cnn", fusion=None, view=3.0)
    # a single-view data module passes durations=(d,): the model takes that view
    assert create_model("small_cnn_single", durations=(4.0,)).view == 4.0
    assert create_model("small_cnn_single").durations == (1.0,)
    with pytest.raises(ValueError, match="disagrees"): create_model("small_cnn_single", durations=(4.0,), view=0.5)


@torch.no_grad()
def test_any_timm_encoder_and_fusion(batch):
    model = create_model("resnet10t", fusion="concat", num_classes=3).eval()
    assert model(batch).shape == (2, 3)
    assert model.feature_dim == 4 * model.encoder.feature_dim
    with pytest.raises(ValueError, match="no_such_backbone"): create_model("no_such_backbone")
    with pytest.raises(ValueError, match="unknown fusion 'max'"): create_model("small_cnn", fusion="max")


@torch.no_grad()
def test_subset_of_durations_and_wrong_view_count(batch):
    model = create_model("small_cnn_attention", durations=(1.0, 4.0)).eval()
    assert model(batch[:, [1, 3]]).shape == (2, 22)
    assert model.view_weights.shape == (2, 2)
    with pytest.raises(ValueError, match=r"expected a batch \(B, 2, C, H, W\)"): model(batch)


@torch.no_grad()
def test_grayscale_replicated_for_three_channel_encoders(batch):
    model = create_model("resnet18_mean", in_chans=3).eval()
    torch.testing.assert_close(model(batch), model(batch.expand(-1, -1, 3, -1, -1)))


def test_merged_cnn_tiles_views_2x2():
    x = torch.stack([torch.full((1, 2, 3), float(v)) for v in range(4)])[None]   # (1, 4, 1, 2, 3)
    tiled = tile_views(x)[0, 0]
    assert tiled.shape == (4, 6)
    assert tiled[0, 0] == 0 and tiled[0, -1] == 1 and tiled[-1, 0] == 2 and tiled[-1, -1] == 3
    with pytest.raises(ValueError, match="needs all four views"): create_model("merged_cnn", durations=(1.0, 2.0))
    merged = create_model("merged_cnn", image_size=224).eval()
    with torch.no_grad(): assert merged(torch.rand(1, 4, 1, 224, 224)).shape == (1, 22)


def test_local_weights_file_is_loaded_offline_and_downloads_refused(tmp_path):
    import timm
    source = timm.create_model("resnet18", pretrained=False, in_chans=3, num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    model = create_model("resnet18_attention", pretrained_file=tmp_path / "resnet18.pth")
    conv = model.encoder.backbone.conv1.weight
    torch.testing.assert_close(conv, source.conv1.weight.sum(1, keepdim=True))     # adapted to one channel
    torch.testing.assert_close(model.encoder.backbone.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    with pytest.raises(FileNotFoundError, match="missing.pth"): create_model("resnet18_mean", pretrained_file=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="never downloaded"): TimmEncoder("resnet18", pretrained=True)
    small = SmallCNN()
    torch.save(small.state_dict(), tmp_path / "small.pth")
    loaded = create_encoder("small_cnn", pretrained_file=tmp_path / "small.pth")
    torch.testing.assert_close(loaded.body[0][0].weight, small.body[0][0].weight)


def test_config_rebuilds_the_same_network(batch):
    model = create_model("small_cnn_attention", num_classes=5, drop_rate=0.1, durations=(0.5, 1.0, 2.0, 4.0)).eval()
    rebuilt = create_model(**model.config).eval()
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad(): torch.testing.assert_close(rebuilt(batch), model(batch))
    assert all(isinstance(v, (str, int, float, tuple, type(None))) for v in model.config.values())


def test_register_model_adds_a_name():
    @register_model(name="_test_tiny")
    def _tiny(**kw): return create_model("small_cnn", fusion="mean", **kw)
    try:
        assert "_test_tiny" in list_models()
        assert create_model("_test_tiny", num_classes=2).fusion_name == "mean"
    finally:
        MODEL_REGISTRY.pop("_test_tiny")


def test_small_cnn_learns_a_toy_problem():
    "A few optimiser steps separate two synthetic classes (a bright low row band vs a bright high band)."
    torch.manual_seed(0)
    x = torch.rand(8, 4, 1, 40, 48) * 0.1
    y = torch.arange(8) % 2
    x[y == 0, :, :, 28:36] += 1.0
    x[y == 1, :, :, 4:12] += 1.0
    model = create_model("small_cnn_attention", num_classes=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = F.cross_entropy(model(x), y).item()
    for _ in range(12):
        opt.zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward(); opt.step()
    assert loss.item() < 0.5 * first
    with torch.no_grad(): assert (model.eval()(x).argmax(1) == y).float().mean() > 0.9


def test_mc_dropout(batch):
    model = create_model("small_cnn_mean", drop_rate=0.5).eval()
    mean, std = mc_dropout_probs(model, batch, samples=6, seed=1)
    torch.testing.assert_close(mean.sum(1), torch.ones(2))
    assert (std > 0).any()
    assert not model.dropout.training
    torch.testing.assert_close(mc_dropout_probs(model, batch, samples=6, seed=1)[0], mean)
    with pytest.raises(ValueError, match="drop_rate > 0"): mc_dropout_probs(create_model("small_cnn_mean"), batch)
    assert predictive_entropy(torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)


def test_parameter_counts_are_sane():
    assert count_parameters(create_model("small_cnn_attention")) < 300_000
    assert 10e6 < count_parameters(create_model("resnet18_mean")) < 12e6


def test_import_gravityaudit_stays_light():
    code = "import sys, gravityaudit; print('torch' in sys.modules, 'timm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


@torch.no_grad()
def test_every_encoder_comes_from_the_factory():
    "The label-free encoder's CNN and frozen timm backbones are built by create_encoder, like the classifiers' encoders."
    band = create_encoder("ssl_cnn", width=8, freq_bands=4)
    assert band.feature_dim == 256 and band(torch.rand(2, 1, 64, 80)).shape == (2, 256)
    with pytest.warns(UserWarning, match="randomly initialised"):
        frozen = create_encoder("timm:resnet18", in_chans=3, frozen=True)
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    assert frozen(torch.rand(2, 3, 32, 32)).shape == (2, 512)
    with pytest.raises(ValueError, match="unknown timm encoder 'small_cnn'"): create_encoder("timm:small_cnn")


@torch.no_grad()
def test_mlp_head_and_encoder_keywords(batch):
    model = create_model("small_cnn_mean", head_hidden=16, drop_rate=0.1).eval()
    assert model(batch).shape == (2, 22) and model.head[0].out_features == 16
    vit = create_model("vit_tiny_patch16_224", fusion="mean", drop_path_rate=0.1, num_classes=4)  # keyword reaches timm
    assert vit.encoder.backbone.blocks[-1].drop_path1.drop_prob == pytest.approx(0.1)
