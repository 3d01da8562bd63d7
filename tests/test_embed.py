"""gravityaudit.embed: embed the tiny real-layout fixture with every encoder kind (SSL, timm without and with a
local weights file, a classifier checkpoint) and check what lands in embeddings.h5: ids in metadata order, vector
shapes, attrs, physical coordinates beside (not inside) the vectors, seeded determinism, atomic writes, the CLI."""
from __future__ import annotations
import json, subprocess, sys, warnings
from pathlib import Path
import h5py
import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
from gravityaudit import __version__  # noqa: E402
from gravityaudit import embed as E  # noqa: E402
from gravityaudit.files import read_embeddings, read_physical, write_embeddings  # noqa: E402


def metadata_of(example_set) -> pd.DataFrame:
    return pd.read_csv(example_set[1], dtype={"gravityspy_id": str})


@pytest.fixture(scope="module")
def ssl_run(tmp_path_factory, example_set):
    "Two SSL embeddings of the fixture with seed 0 and one with seed 1 (1 epoch each)."
    root = tmp_path_factory.mktemp("ssl")
    kw = dict(encoder="ssl", ssl_epochs=1, batch_size=8, accelerator="cpu", devices=1)
    paths = [E.embed(example_set[0], out=root / f"{name}.h5", seed=seed, **kw)
             for name, seed in (("a", 0), ("b", 0), ("c", 1))]
    return paths


def test_ssl_vectors_ids_attrs_and_physical(ssl_run, example_set):
    ids, vectors, attrs = read_embeddings(ssl_run[0])
    meta = metadata_of(example_set)
    assert list(ids) == list(meta.gravityspy_id)                    # one row per glitch, metadata order
    assert vectors.dtype == np.float32 and vectors.shape == (len(meta), 4 * 512)
    assert np.isfinite(vectors).all() and vectors.std(0).max() > 0
    assert attrs["encoder"] == "ssl" and attrs["package_version"] == __version__ and attrs["per_view"] is False
    assert attrs["views"] == ["0.5.png", "1.0.png", "2.0.png", "4.0.png"]
    config = attrs["encoder_config"]
    assert config["epochs"] == 1 and config["image_size"] == [64, 80] and config["seed"] == 0
    phys = read_physical(ssl_run[0])
    for column in ("peak_frequency", "bandwidth", "duration", "snr"):
        np.testing.assert_allclose(phys[column], meta[column])      # stored beside the vectors ...
    assert list(phys.label) == list(meta.label) and list(phys.ifo) == list(meta.ifo)
    assert list(phys.columns) == ["gravityspy_id", "label", "peak_frequency", "central_freq", "bandwidth", "duration", "snr",
                                  "amplitude", "ifo"]                # gravityaudit.files.PHYSICAL_COLUMNS


def test_ssl_is_seeded(ssl_run):
    a, b, c = (read_embeddings(p)[1] for p in ssl_run)
    np.testing.assert_array_equal(a, b)                             # same input + seed -> same vectors
    assert not np.allclose(a, c)                                    # another seed -> another encoder


def test_ssl_keeps_frequency_position(ssl_run):
    "The fixture's classes differ only by the height (frequency) of a blob: nearest neighbours must find the class."
    ids, vectors, _ = read_embeddings(ssl_run[0])
    assert E.knn_agreement(vectors, read_physical(ssl_run[0]).label, k=1) >= 0.8


def test_timm_without_weights_warns_and_per_view(tmp_path, example_set):
    meta = metadata_of(example_set)
    with pytest.warns(UserWarning, match="randomly initialised"):
        out = E.embed(example_set[0], encoder="timm:resnet18", out=tmp_path / "r18.h5", image_size=32,
                      batch_size=8, accelerator="cpu", devices=1)
    ids, vectors, attrs = read_embeddings(out)
    assert vectors.shape == (len(meta), 4 * 512) and list(ids) == list(meta.gravityspy_id)
    assert attrs["encoder_config"]["pretrained"] is False and attrs["encoder_config"]["image_size"] == [32, 32]
    with pytest.warns(UserWarning):
        per_view = E.embed(example_set[0], encoder="timm:resnet18", out=tmp_path / "pv.h5", image_size=32,
                           batch_size=8, per_view=True, accelerator="cpu", devices=1)
    pv_ids, pv_vectors, pv_attrs = read_embeddings(per_view)
    assert pv_vectors.shape == (4 * len(meta), 512) and pv_attrs["per_view"] is True
    assert list(pv_ids[:4]) == [meta.gravityspy_id[0]] * 4
    assert list(read_physical(per_view).view[:4]) == ["0.5.png", "1.0.png", "2.0.png", "4.0.png"]
    np.testing.assert_allclose(pv_vectors.reshape(len(meta), -1), vectors, rtol=1e-4, atol=1e-5)


def test_timm_loads_a_local_weights_file(tmp_path, example_set):
    import timm
    source = timm.create_model("resnet18", pretrained=False)
    with torch.no_grad(): source.conv1.weight.fill_(0.01)
    weights = tmp_path / "resnet18_local.pth"
    torch.save(source.state_dict(), weights)
    from gravityaudit.features import frozen_encoder
    backbone = frozen_encoder("resnet18", str(weights), (32, 32)).backbone     # asked of the model factory
    torch.testing.assert_close(backbone.conv1.weight, source.conv1.weight)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)                    # no 'random weights' warning this time
        out = E.embed(example_set[0], encoder=f"timm:resnet18:{weights}", out=tmp_path / "e.h5", image_size=32,
                      batch_size=8, accelerator="cpu", devices=1)
    assert read_embeddings(out)[2]["encoder_config"]["pretrained"] is True


def test_checkpoint_features(tmp_path, example_set):
    train = pytest.importorskip("gravityaudit.train")
    classifier = train.GlitchClassifier(architecture="small_cnn_attention", model_kwargs={"widths": [4, 8]},
                                        input_size=[16, 16], class_names=["Blip", "Koi_Fish", "Scattered_Light", "Whistle"])
    checkpoint = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": classifier.state_dict(), "hyper_parameters": dict(classifier.hparams)}, checkpoint)
    out = E.embed(example_set[0], encoder=f"checkpoint:{checkpoint}", out=tmp_path / "e.h5", batch_size=8,
                  accelerator="cpu", devices=1)
    ids, vectors, attrs = read_embeddings(out)
    dm = E.data_module(example_set[0], image_size=[16, 16])
    batch = next(iter(dm.predict_dataloader()))
    with torch.no_grad(): expected = classifier.eval().model.forward_features(batch["image"]).numpy()
    assert vectors.shape == (len(metadata_of(example_set)), classifier.model.feature_dim)
    np.testing.assert_allclose(vectors[:len(expected)], expected, rtol=1e-4, atol=1e-5)
    assert attrs["encoder_config"]["checkpoint"] == str(checkpoint)
    with pytest.raises(ValueError, match="per-view"):
        E.embed(example_set[0], encoder=f"checkpoint:{checkpoint}", out=tmp_path / "pv.h5", per_view=True)


def test_output_is_atomic(tmp_path, example_set):
    out = tmp_path / "embeddings.h5"
    write_embeddings(out, ["a"], np.ones((1, 2)), {"encoder": "first"})
    with pytest.raises(Exception):                                  # fails half-way through writing the file
        write_embeddings(out, ["a", "b"], np.zeros((2, 2)), {"encoder": "second"},
                           physical={"snr": np.array([object(), object()])})
    assert read_embeddings(out)[2]["encoder"] == "first"          # the old file is intact ...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embeddings.h5"]   # ... and no temporary is left
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        E.embed(example_set[0], encoder="timm:resnet18:nowhere.pth", out=out)
    assert read_embeddings(out)[2]["encoder"] == "first"


def test_cli(tmp_path, example_set, capsys):
    out = tmp_path / "cli.h5"
    argv = ["--data", str(example_set[0]), "--encoder", "timm:resnet18", "--image-size", "32", "--out", str(out),
            "--batch-size", "8", "--accelerator", "cpu", "--devices", "1"]
    with pytest.warns(UserWarning):
        assert E.embed_command(argv) == 0
    assert "20 vectors of dimension 2048" in capsys.readouterr().out
    assert read_embeddings(out)[1].shape == (20, 2048)
    assert E.embed_command(["--data", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x.h5")]) == 2
    assert "missing.h5" in capsys.readouterr().err
    assert E.embed_command(["--data", str(example_set[0]), "--encoder", "vit"]) == 2
    assert "'vit'" in capsys.readouterr().err


DDP_SCRIPT = """
import sys
from gravityaudit.embed import embed
embed(sys.argv[1], encoder="timm:resnet18", image_size=32, out=sys.argv[2], batch_size=3, seed=7,
      accelerator="cpu", devices=2, strategy="ddp")
"""


@pytest.mark.timeout(300)
def test_ddp_predictions_come_back_in_order(tmp_path, example_set):
    "Two CPU ranks (gloo) each embed half the glitches; the file holds every glitch once, in metadata order."
    script = tmp_path / "ddp_embed.py"
    script.write_text(DDP_SCRIPT)
    run = subprocess.run([sys.executable, str(script), str(example_set[0]), str(tmp_path / "ddp.h5")],
                         capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    # the seeded, frozen random backbone is the same in every process: one process must give the very same rows
    single = E.embed(example_set[0], encoder="timm:resnet18", image_size=32, out=tmp_path / "one.h5", batch_size=3, seed=7,
                     accelerator="cpu", devices=1)
    ids, vectors, _ = read_embeddings(tmp_path / "ddp.h5")
    ids1, vectors1, _ = read_embeddings(single)
    assert list(ids) == list(ids1) == list(metadata_of(example_set).gravityspy_id)
    np.testing.assert_allclose(vectors, vectors1, rtol=1e-4, atol=1e-5)
    assert not (tmp_path / ".ddp.h5.ranks").exists()
