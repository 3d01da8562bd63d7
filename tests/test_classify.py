"Tests of gravityaudit.classify: predict over a data set, classify from strain, the two CLI commands."
import pickle
import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from gravityaudit.classify import (load_checkpoint, predict_dataset, predict_command, classify_strain, classify_command,
                                   strain_to_images, classifier_inputs, probability_table, predict_images)
from gravityaudit.files import read_strain
from gravityaudit.layout import scan_to_image
from gravityaudit.qscan import omega_scan, SCAN_FREQUENCIES
from gravityaudit.taxonomy import DURATIONS
from gravityaudit.classifier import GlitchClassifier

CLASSES = ["Low_Frequency_Burst", "Whistle"]


class RunsCodeWhenUnpickled:
    "An object whose unpickling calls a function: what a weights-only load must refuse."
    def __reduce__(self): return (print, ("this ran while loading",))


def save_checkpoint(classifier, path):
    "Save as `gravityaudit fit` does (GlitchClassifier.on_save_checkpoint): weights + plain hyperparameters."
    ckpt = {"state_dict": classifier.state_dict()}
    classifier.on_save_checkpoint(ckpt)
    torch.save(ckpt, path)
    return path


def burst(f0, q=9.0, snr=25.0, seed=0, sample_rate=4096, seconds=8.0):
    "White noise with a sine-Gaussian of frequency f0 at the middle of the segment."
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate - seconds / 2
    tau = q / (np.sqrt(2) * np.pi * f0)
    b = np.exp(-(t / tau) ** 2) * np.sin(2 * np.pi * f0 * t)
    return rng.normal(size=t.size) + b * snr / np.sqrt((b ** 2).sum())


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    "An untrained 2-class attention model at 64 x 64 with temperature 2, saved as a checkpoint."
    torch.manual_seed(0)
    clf = GlitchClassifier(architecture="small_cnn_attention", class_names=CLASSES, input_size=[64, 64], drop_rate=0.3)
    clf.temperature.fill_(2.0)
    return save_checkpoint(clf, tmp_path_factory.mktemp("ckpt") / "untrained.ckpt")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    "A small classifier trained on omega scans of low (25-60 Hz) vs high (500-1200 Hz) frequency bursts."
    rng = np.random.default_rng(0)
    n = 6
    low = [burst(rng.uniform(25, 60), rng.uniform(5, 20), rng.uniform(15, 40), seed=100 + i) for i in range(n)]
    high = [burst(rng.uniform(500, 1200), rng.uniform(5, 20), rng.uniform(15, 40), seed=200 + i) for i in range(n)]
    x = torch.from_numpy(strain_to_images(np.stack(low + high), 4096))
    y = torch.tensor([0] * n + [1] * n)
    torch.manual_seed(0)
    clf = GlitchClassifier(architecture="small_cnn_attention", class_names=CLASSES, input_size=[64, 64], drop_rate=0.3)
    opt = torch.optim.Adam(clf.parameters(), lr=3e-3)
    clf.train()
    for _ in range(20):
        opt.zero_grad(); torch.nn.functional.cross_entropy(clf(clf.prepare_images(x)), y).backward(); opt.step()
    with torch.no_grad():
        for m in clf.modules():
            if isinstance(m, torch.nn.BatchNorm2d): m.reset_running_stats(); m.momentum = None
        clf(clf.prepare_images(x))
    return save_checkpoint(clf.eval(), tmp_path_factory.mktemp("ckpt") / "trained.ckpt")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from gravityaudit.examples import write_example_set
    return write_example_set(tmp_path_factory.mktemp("set"), n_per_class=2, classes=["Low_Frequency_Burst", "Whistle", "Blip"])


def test_checkpoint_loads_weights_only(untrained, tmp_path):
    clf = load_checkpoint(untrained)
    assert clf.classes == tuple(CLASSES) and clf.temperature.item() == pytest.approx(2.0)
    assert not clf.training and load_checkpoint(clf) is clf
    ckpt = torch.load(untrained, weights_only=True)
    ckpt["payload"] = RunsCodeWhenUnpickled()
    torch.save(ckpt, tmp_path / "unsafe.ckpt")
    with pytest.raises(pickle.UnpicklingError): load_checkpoint(tmp_path / "unsafe.ckpt")
    with pytest.raises(FileNotFoundError, match="nothing.ckpt"): load_checkpoint(tmp_path / "nothing.ckpt")


def test_probability_table_columns():
    table = probability_table(np.array([[0.2, 0.8], [0.6, 0.4]]), CLASSES, uncertainty=np.array([0.1, 0.2]))
    assert list(table.columns) == ["predicted", "confidence", "top3", "uncertainty", "p_Low_Frequency_Burst", "p_Whistle"]
    assert list(table.predicted) == ["Whistle", "Low_Frequency_Burst"]
    assert table.top3[0] == "Whistle:0.800;Low_Frequency_Burst:0.200"


def test_predict_command_writes_calibrated_probabilities(untrained, dataset, tmp_path):
    h5, csv = dataset
    out = tmp_path / "predictions.csv"
    assert predict_command(["--checkpoint", str(untrained), "--data", str(h5), "--metadata", str(csv), "--out", str(out)]) == 0
    table = pd.read_csv(out, dtype={"gravityspy_id": str})
    meta = pd.read_csv(csv, dtype={"gravityspy_id": str})
    assert list(table.columns) == ["gravityspy_id", "label", "predicted", "confidence", "top3", "p_Low_Frequency_Burst", "p_Whistle"]
    assert sorted(table.gravityspy_id) == sorted(meta.gravityspy_id) and len(table) == 6
    assert set(table.label) == {"Low_Frequency_Burst", "Whistle", "Blip"}
    # the probabilities are softmax(logits / T) of the stored views, resized to the checkpoint's 64 x 64
    clf = load_checkpoint(untrained)
    with h5py.File(h5, "r") as f:
        row = table.iloc[0]
        group = f[f"{row.label}"]
        gid_path = next(f"{row.label}/{st}/{row.gravityspy_id}" for st in group if row.gravityspy_id in group[st])
        views = np.stack([f[f"{gid_path}/{d}.png"][0] for d in ("0.5", "1.0", "2.0", "4.0")])[None]
    x = torch.nn.functional.interpolate(torch.from_numpy(views).flatten(0, 1)[:, None], size=(64, 64), mode="bilinear",
                                        antialias=True).unflatten(0, (1, 4))
    with torch.no_grad(): expected = torch.softmax(clf(x) / 2.0, -1)[0].numpy()
    np.testing.assert_allclose(row[["p_Low_Frequency_Burst", "p_Whistle"]].to_numpy(float), expected, atol=1e-4)
    assert row.confidence == pytest.approx(expected.max(), abs=1e-4)


def test_single_view_checkpoint_reads_its_own_view(dataset, tmp_path):
    h5, _ = dataset
    clf = GlitchClassifier(architecture="small_cnn_single", class_names=CLASSES, view_durations=[2.0]).eval()
    ckpt = save_checkpoint(clf, tmp_path / "single.ckpt")
    table = predict_dataset(ckpt, h5, batch_size=4)
    images = np.random.default_rng(0).random((2, 4, 140, 170), dtype=np.float32)
    assert classifier_inputs(load_checkpoint(ckpt), images).shape == (2, 140, 170)
    np.testing.assert_array_equal(classifier_inputs(load_checkpoint(ckpt), images), images[:, 2])
    assert len(table) == 6 and np.allclose(table[["p_Low_Frequency_Burst", "p_Whistle"]].sum(axis=1), 1)


def test_strain_images_are_in_gravity_spy_orientation():
    strain = np.stack([burst(40.0, seed=1), burst(900.0, seed=2)])
    images = strain_to_images(strain, 4096)
    np.testing.assert_array_equal(images, scan_to_image(omega_scan(strain, 4096)))
    peak_rows = images[:, 3].max(-1).argmax(-1)
    assert peak_rows[1] < 40 < 70 < peak_rows[0]                           # high frequency at the top
    assert np.all(np.abs(np.log2(SCAN_FREQUENCIES[::-1][peak_rows] / [40.0, 900.0])) < 1)


def test_classify_strain_tells_low_from_high_frequency_raw_or_whitened(trained):
    strain = np.stack([burst(40.0, seed=1), burst(900.0, seed=2), burst(35.0, q=6, seed=3), burst(700.0, q=15, seed=4)])
    table = classify_strain(trained, strain, 4096)
    assert list(table.columns[:4]) == ["index", "label", "confidence", "top3"]
    assert list(table["index"]) == [0, 1, 2, 3]
    assert list(table.label) == ["Low_Frequency_Burst", "Whistle", "Low_Frequency_Burst", "Whistle"]
    # raw strain in physical units, with a loud low-frequency wander: omega_scan whitens it itself
    t = np.arange(strain.shape[1]) / 4096
    raw = 1e-21 * (strain + 50 * np.sin(2 * np.pi * 3.0 * t))
    raw_table = classify_strain(trained, raw, 4096, center=4.0)
    assert list(raw_table.label) == list(table.label)
    np.testing.assert_allclose(raw_table.confidence, table.confidence, atol=0.05)
    one = classify_strain(trained, strain[1], 4096, center=[4.0])           # a single (T,) segment
    assert len(one) == 1 and one.label[0] == "Whistle"


def test_classify_strain_matches_the_chain_and_mc_dropout(untrained):
    strain = np.stack([burst(100.0, seed=5), burst(300.0, seed=6), burst(60.0, seed=7)])
    table = classify_strain(untrained, strain, 4096, batch_size=2)
    direct = predict_images(load_checkpoint(untrained), scan_to_image(omega_scan(strain, 4096)))
    np.testing.assert_allclose(table.filter(like="p_").to_numpy(), direct.filter(like="p_").to_numpy(), atol=1e-5)
    mc1 = classify_strain(untrained, strain, 4096, mc_samples=5, seed=3)
    mc2 = classify_strain(untrained, strain, 4096, mc_samples=5, seed=3)
    assert "uncertainty" in mc1.columns and (mc1.uncertainty >= 0).all()
    pd.testing.assert_frame_equal(mc1, mc2)


def test_classify_command_npy_and_hdf5(trained, tmp_path):
    strain = np.stack([burst(40.0, seed=1), burst(900.0, seed=2)])
    np.save(tmp_path / "s.npy", strain)
    out = tmp_path / "out.csv"
    assert classify_command(["--checkpoint", str(trained), "--strain", str(tmp_path / "s.npy"), "--sample-rate", "4096",
                             "--out", str(out)]) == 0
    assert list(pd.read_csv(out).label) == ["Low_Frequency_Burst", "Whistle"]
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("L1/strain", data=strain[1]).attrs["dx"] = 1 / 4096    # a gwpy-style dataset: rate from dx
        f.create_dataset("other", data=np.zeros(3))
    assert read_strain(tmp_path / "s.h5", "L1/strain").sample_rate == pytest.approx(4096)
    with pytest.raises(ValueError, match="--dataset"): read_strain(tmp_path / "s.h5")
    with pytest.raises(KeyError, match="nope"): read_strain(tmp_path / "s.h5", "nope")
    assert classify_command(["--checkpoint", str(trained), "--strain", str(tmp_path / "s.h5"), "--dataset", "L1/strain",
                             "--out", str(out)]) == 0
    assert list(pd.read_csv(out).label) == ["Whistle"]
    with pytest.raises(ValueError, match="pass --sample-rate"):
        classify_command(["--checkpoint", str(trained), "--strain", str(tmp_path / "s.npy"), "--out", str(out)])
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        classify_command(["--checkpoint", str(trained), "--strain", str(tmp_path / "missing.npy"), "--sample-rate", "4096", "--out", str(out)])
    with pytest.raises(ValueError, match="NaN"): classify_strain(trained, np.full(8 * 4096, np.nan), 4096)


def test_cli_dispatches_to_predict(untrained, dataset, tmp_path):
    from gravityaudit.cli import main
    h5, _ = dataset
    assert main(["predict", "--checkpoint", str(untrained), "--data", str(h5), "--out", str(tmp_path / "p.csv"), "--mc-samples", "3"]) == 0
    table = pd.read_csv(tmp_path / "p.csv")
    assert "uncertainty" in table.columns and len(table) == 6
