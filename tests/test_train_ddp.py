"""Scale-out: the shipped demo config runs with Lightning DDP (2 CPU processes, gloo) for a 1-epoch fit and a
predict; the per-rank prediction files cover every glitch exactly once (run as a subprocess script, as
Lightning's DDP launcher re-executes the script)."""
from __future__ import annotations
import os, subprocess, sys, textwrap
import pytest

torch = pytest.importorskip("torch")
from gravityaudit import train  # noqa: E402
from gravityaudit.callbacks import read_predictions  # noqa: E402

SCRIPT = textwrap.dedent('''
    import sys
    from gravityaudit.train import GlitchCLI, end_distributed
    cli = GlitchCLI(args=sys.argv[1:], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cli.trainer.predict(cli.model, datamodule=cli.datamodule, return_predictions=False)
    print("RANK", cli.trainer.global_rank, "WORLD", cli.trainer.world_size, "LOGDIR", cli.trainer.log_dir)
    end_distributed()       # as gravityaudit fit does: without it gloo aborts the exit now and then
''')


def test_ddp_fit_and_predict_cover_every_glitch_once(tmp_path, example_copy):
    data, root = example_copy[0], tmp_path / "runs"
    script = tmp_path / "ddp_fit_predict.py"
    script.write_text(SCRIPT)
    args = ["--config", str(train.config_path("demo")), "--data.data", str(data), "--trainer.default_root_dir", str(root),
            "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_epochs", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--model.architecture", "small_cnn_attention", "--model.model_kwargs", '{"widths": [4, 8]}',
            "--data.image_size", "16", "--data.batch_size", "3", "--wandb", "false", "--model.log_figures", "false"]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "WORLD 2" in done.stdout, done.stdout[-2000:]
    predictions_dir = root / "version_0" / "predictions"
    assert sorted(p.name for p in predictions_dir.glob("*.csv")) == ["predictions-rank0.csv", "predictions-rank1.csv"]
    table = read_predictions(predictions_dir)
    assert sorted(table["index"]) == list(range(20))               # every glitch of the fixture, exactly once
    import pandas as pd
    meta = pd.read_csv(example_copy[1], dtype={"gravityspy_id": str})
    assert (table["gravityspy_id"].to_numpy() == meta["gravityspy_id"].to_numpy()).all()
    probs = table[[c for c in table.columns if c.startswith("p_")]].to_numpy()
    assert probs.shape == (20, 22) and abs(probs.sum(1) - 1).max() < 1e-4
    assert (table["confidence"] == probs.max(1)).all() and list(table.columns[:6]) == ["index", "gravityspy_id", "label", "predicted", "confidence", "top3"]
    assert (root / "version_0" / "checkpoints" / "best.ckpt").exists()


def test_ddp_predict_command_matches_one_process(tmp_path, example_copy):
    "`gravityaudit predict --devices 2 --strategy ddp` (trainer.predict + PredictionWriter) writes the table one process writes."
    import pandas as pd
    from gravityaudit.classifier import GlitchClassifier
    from gravityaudit.classify import predict_dataset
    data = example_copy[0]
    torch.manual_seed(0)
    clf = GlitchClassifier(architecture="small_cnn_attention", model_kwargs={"widths": [4, 8]}, input_size=[16, 16])
    ckpt = {"state_dict": clf.state_dict()}
    clf.on_save_checkpoint(ckpt)
    torch.save(ckpt, tmp_path / "model.ckpt")
    script = tmp_path / "gravityaudit_cli.py"
    script.write_text("import sys\nfrom gravityaudit.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "predictions.csv"
    env = {**os.environ, "WANDB_MODE": "offline", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), "predict", "--checkpoint", str(tmp_path / "model.ckpt"), "--data", str(data),
                           "--out", str(out), "--batch-size", "3", "--devices", "2", "--strategy", "ddp"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    table = pd.read_csv(out, dtype={"gravityspy_id": str})
    one = predict_dataset(tmp_path / "model.ckpt", data, batch_size=3)
    assert list(table.columns) == list(one.columns) and list(table.columns[:5]) == ["gravityspy_id", "label", "predicted", "confidence", "top3"]
    assert list(table.gravityspy_id) == list(one.gravityspy_id) and len(table) == 20
    assert abs(table.filter(like="p_").to_numpy() - one.filter(like="p_").to_numpy()).max() < 1e-5
    assert not (tmp_path / ".predictions.csv.ranks").exists()
