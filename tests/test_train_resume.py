"""A fit killed mid-epoch (SIGKILL of a real subprocess) resumes from last.ckpt with `--ckpt_path last` and
finishes every epoch."""
from __future__ import annotations
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest

torch = pytest.importorskip("torch")
from gravityaudit import train  # noqa: E402

EPOCHS = 3


def args(data, root, *extra) -> list[str]:
    "A tiny CPU fit (batch size 1, a checkpoint after every step: slow enough to be killed mid-epoch)."
    return ["--config", "demo", "--data.data", str(data), "--trainer.default_root_dir", str(root),
            "--trainer.accelerator", "cpu", "--trainer.max_epochs", str(EPOCHS), "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--model.architecture", "small_cnn_attention",
            "--model.model_kwargs", '{"widths": [4, 8]}', "--data.image_size", "16", "--data.batch_size", "1",
            "--checkpoint.every_n_train_steps", "1", "--early_stopping.patience", "100", "--wandb", "false",
            "--model.log_figures", "false", *extra]


def loadable(path: Path):
    "The checkpoint at `path` if it exists and loads, else None."
    try: return torch.load(path, map_location="cpu", weights_only=True)
    except Exception: return None


def test_killed_fit_resumes_from_last_checkpoint(tmp_path, example_copy):
    data, root = example_copy[0], tmp_path / "runs"
    steps_per_epoch = 12                                       # 4 classes x 3 training glitches, batch size 1
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "MPLBACKEND": "Agg"}
    code = "import sys; from gravityaudit.train import fit_command; sys.exit(fit_command(sys.argv[1:]))"
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", code, *args(data, root)], stdout=log, stderr=subprocess.STDOUT, env=env)
    last = root / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 180
    try:
        while loadable(last) is None:
            assert proc.poll() is None, f"fit ended before it could be killed:\n{(tmp_path / 'killed.log').read_text()[-3000:]}"
            assert time.time() < deadline, "no last.ckpt after 180 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(); log.close()
    assert proc.returncode == -signal.SIGKILL
    killed_at = loadable(last)["global_step"]
    assert 0 < killed_at < EPOCHS * steps_per_epoch            # killed mid-fit
    assert not (root / "version_0" / "calibration.json").exists()

    assert train.fit_command(args(data, root, "--ckpt_path", "last")) == 0
    final = torch.load(root / "version_1" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert final["epoch"] == EPOCHS - 1 and final["global_step"] == EPOCHS * steps_per_epoch
    assert (root / "version_1" / "calibration.json").exists()  # the resumed fit ran to its end
    rows = (root / "version_1" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    epochs = {int(float(r.split(",")[header.index("epoch")])) for r in rows[1:] if r.split(",")[header.index("epoch")]}
    assert max(epochs) == EPOCHS - 1 and min(epochs) == killed_at // steps_per_epoch   # continued, not restarted
