"""gravityaudit.train (with .classifier, .callbacks, .checkpoints): a real fit through `gravityaudit fit` on the tiny real-layout fixture (CPU, 2 epochs,
16 x 16 views), then what it must leave behind: checkpoints loadable weights-only, a calibrated temperature,
CSV metrics, figures and an offline W&B run whose records really hold the metrics."""
from __future__ import annotations
import json, os
from pathlib import Path
import numpy as np
import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("MPLBACKEND", "Agg")
torch = pytest.importorskip("torch")
from gravityaudit import train  # noqa: E402  (not `from ... import test_command`: pytest would collect it)
from gravityaudit.checkpoints import load_classifier, find_checkpoint  # noqa: E402
from gravityaudit.classifier import GlitchClassifier, probabilities_ece  # noqa: E402
from lightning.pytorch.callbacks import EarlyStopping  # noqa: E402
from wandb_files import read_wandb_history, read_wandb_config  # noqa: E402
from gravityaudit.taxonomy import CLASSES_V1, DURATIONS  # noqa: E402

FAST = ["--trainer.accelerator", "cpu", "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "1",
        "--model.architecture", "small_cnn_attention", "--model.model_kwargs", '{"widths": [4, 8]}',
        "--model.sample_predictions", "4", "--data.image_size", "16", "--data.batch_size", "4"]


def fast_args(data, root, *extra) -> list[str]:
    "Arguments of a tiny CPU fit of the shipped demo config on `data`, writing under `root`."
    return ["--config", "demo", "--data.data", str(data), "--trainer.default_root_dir", str(root), *FAST, *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, example_set):
    "A run root with one finished `gravityaudit fit` (CSV + offline W&B)."
    root = tmp_path_factory.mktemp("runs")
    assert train.fit_command(fast_args(example_set[0], root)) == 0
    return root


def test_fit_writes_checkpoints_metrics_and_figures(trained):
    run = trained / "version_0"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert (trained / "best.ckpt").resolve() == (run / "checkpoints" / "best.ckpt").resolve()
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    for key in ("train/loss_epoch", "val/acc", "val/balanced_acc", "val/f1_macro", "val/f1_weighted", "val/top3_acc",
                "val/ece", "val/recall/Blip", "val/precision/Whistle", "calibration/ece_before", "calibration/ece_after"):
        assert key in header, key
    assert any(k.startswith("lr-AdamW") for k in header)
    for name in ("val_confusion_matrix.png", "val_view_weights.png", "val_per_class.csv"):
        assert (run / "figures" / name).stat().st_size > 0, name
    assert (run / "config.yaml").exists()
    report = json.loads((run / "calibration.json").read_text())
    assert set(report) == {"best", "last"} and report["best"]["temperature"] > 0


def test_offline_wandb_run_holds_the_metrics(trained):
    runs = sorted((trained / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    history = read_wandb_history(runs[0])
    epochs = [row for row in history if "val/balanced_acc" in row]
    assert len(epochs) == 2 and all(0 <= row["val/balanced_acc"] <= 1 for row in epochs)
    logged = set().union(*history)
    for key in ("train/loss_epoch", "val/ece", "val/top3_acc", "calibration/ece_after", "calibration/temperature"):
        assert key in logged, key
    assert any(k.startswith("val/confusion_matrix") for k in logged) and any(k.startswith("val/sample_predictions") for k in logged)
    config = read_wandb_config(runs[0])
    assert config["lr"] == 0.003 and config["architecture"] == "small_cnn_attention"
    media = runs[0].parent / "files" / "media"
    assert list(media.glob("images/val/confusion_matrix_*.png")) and list(media.glob("images/val/view_weights_*.png"))
    assert list(media.glob("table/val/sample_predictions_*.table.json"))


def test_checkpoint_loads_weights_only_with_its_temperature(trained):
    path = trained / "version_0" / "checkpoints" / "best.ckpt"
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["gravityaudit"]["temperature"] == pytest.approx(float(raw["state_dict"]["temperature"]))
    assert raw["gravityaudit"]["calibration"]["ece_after"] <= raw["gravityaudit"]["calibration"]["ece_before"] + 1e-6
    clf = load_classifier(path)
    assert not clf.training and clf.classes == CLASSES_V1 and clf.durations == DURATIONS
    assert clf.image_size == [16, 16] and clf.channels == 1
    assert float(clf.temperature) == pytest.approx(raw["gravityaudit"]["temperature"])
    images = np.random.default_rng(0).random((3, 4, 1, 140, 170), dtype=np.float32)
    probs = clf.predict_proba(images)
    assert probs.shape == (3, 22) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # Lightning's own loader (weights-only, from the stored plain hyperparameters) gives the same probabilities
    same = GlitchClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=True).eval()
    assert np.allclose(probs, same.predict_proba(images), atol=1e-6)
    mean, uncertainty = clf.mc_dropout_proba(images, samples=4)   # demo config has drop_rate 0.1
    assert mean.shape == (3, 22) and uncertainty.shape == (3,) and (uncertainty >= 0).all()
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt"):
        load_classifier(trained / "nowhere.ckpt")


def test_repeat_fit_and_test_do_not_collide(trained, example_set):
    first = trained / "version_0" / "checkpoints" / "best.ckpt"
    stamp = first.stat().st_mtime_ns
    assert train.fit_command(fast_args(example_set[0], trained, "--model.focal_gamma", "2.0", "--wandb", "false")) == 0
    assert first.stat().st_mtime_ns == stamp                            # the first run is untouched
    assert (trained / "last.ckpt").resolve() == (trained / "version_1" / "checkpoints" / "last.ckpt").resolve()
    assert load_classifier(trained / "best.ckpt").hparams.focal_gamma == 2.0
    assert train.test_command(fast_args(example_set[0], trained, "--wandb", "false")) == 0   # default: newest best.ckpt
    header = (trained / "version_2" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"test/acc", "test/balanced_acc", "test/ece", "test/recall/Koi_Fish"} <= set(header)
    assert (trained / "version_2" / "figures" / "test_confusion_matrix.png").exists()
    assert train.validate_command(fast_args(example_set[0], trained, "--wandb", "false", "--ckpt_path", "last")) == 0
    header = (trained / "version_3" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val/balanced_acc", "val/top3_acc", "val/f1_weighted"} <= set(header)


def test_bad_config_name_is_named():
    with pytest.raises(FileNotFoundError, match="no_such_config"):
        train.fit_command(["--config", "no_such_config"])


@pytest.mark.parametrize("name", ["merged_cnn", "resnet18_attention", "vit_attention", "resnet18_single_1s", "demo"])
def test_shipped_configs_build_and_run_a_batch(name, example_set, tmp_path):
    cli = train.GlitchCLI(args=["--config", str(train.config_path(name)), "--data.data", str(example_set[0]),
                                "--trainer.default_root_dir", str(tmp_path), "--data.batch_size", "2", "--data.num_workers", "0",
                                "--wandb", "false"], run=False)
    model, dm = cli.model, cli.datamodule
    assert model.classes == dm.classes and model.durations == dm.durations and model.image_size == list(dm.image_size)
    assert cli.trainer.precision == ("bf16-mixed" if torch.cuda.is_available() else "32-true")
    assert any(isinstance(c, EarlyStopping) and c.monitor == "val/balanced_acc" for c in cli.trainer.callbacks)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    with torch.no_grad(): logits = model.eval()(batch["image"])
    assert logits.shape == (2, 22)
    assert model.single_view == (name == "resnet18_single_1s")


def test_checkpoint_remembers_the_scan_profile_and_classify_warns(tmp_path, example_copy):
    "A fit on a file that records its strain profile stores it; classify_strain warns on strain of another profile only."
    import h5py, warnings
    from gravityaudit.classify import classify_strain, ScanProfileWarning
    h5, _ = example_copy
    with h5py.File(h5, "a") as f: f.attrs["sample_rate"], f.attrs["segment_duration"] = 8192, 16.0
    assert train.fit_command(fast_args(h5, tmp_path, "--wandb", "false", "--trainer.max_epochs", "1")) == 0
    best = find_checkpoint(tmp_path, "best")
    assert torch.load(best, map_location="cpu", weights_only=True)["gravityaudit"]["scan_profile"] == {"sample_rate": 8192.0, "segment_duration": 16.0}
    assert load_classifier(best).scan_profile == {"sample_rate": 8192.0, "segment_duration": 16.0}
    rng = np.random.default_rng(0)
    with pytest.warns(ScanProfileWarning, match="1291 Hz"):
        classify_strain(best, rng.normal(size=8 * 4096), 4096)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScanProfileWarning)
        assert len(classify_strain(best, rng.normal(size=16 * 8192), 8192)) == 1


def test_one_expected_calibration_error_agrees_with_torchmetrics():
    "The numpy ECE (gravityaudit.evaluation, used by the classifier's calibration and the report) is torchmetrics' L1 ECE."
    from torchmetrics.functional.classification import multiclass_calibration_error
    from gravityaudit.evaluation import expected_calibration_error
    g = torch.Generator().manual_seed(2)
    probs = torch.softmax(4 * torch.randn(800, 22, generator=g), -1)
    probs[:30] = torch.nn.functional.one_hot(torch.arange(30) % 22, 22).float()    # confidences of exactly 1
    labels = torch.randint(0, 22, (800,), generator=g)
    for n_bins in (5, 15, 20):
        expected = float(multiclass_calibration_error(probs, labels, num_classes=22, n_bins=n_bins, norm="l1"))
        assert probabilities_ece(probs, labels, n_bins) == pytest.approx(expected, abs=1e-6)
        confidence, predicted = probs.max(1)
        assert expected_calibration_error(confidence.numpy(), (predicted == labels).numpy(), n_bins) == pytest.approx(expected, abs=1e-6)
