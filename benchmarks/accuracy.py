"""Accuracy of the shipped training configs, side by side, on one data set (the README's comparison table).

Each config is trained with `gravityaudit fit` (its own YAML, unchanged unless --max-epochs or overrides are
given), then scored with `gravityaudit test` on the test split of the same file from its best checkpoint. One
markdown row per config: epochs run, fit wall time, test accuracy, balanced accuracy, macro-F1, top-3 accuracy
and the expected calibration error after temperature scaling. The baseline of the table is merged_cnn (Bahaadini
et al. 2018), the model the others must beat. On a CUDA machine the configs train in bf16-mixed by default.

    python benchmarks/accuracy.py --data runs/gs/dataset.h5 [--configs demo merged_cnn ...] [--max-epochs N]
           [--root DIR] [-- --trainer.accelerator gpu ...]

Use a set simulated with `--no-scenarios` to measure how well the morphologies are learned (labels = truth).
"""
from __future__ import annotations
import argparse, json, os, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline"); os.environ.setdefault("WANDB_SILENT", "true"); os.environ.setdefault("MPLBACKEND", "Agg")
import torch
from gravityaudit.train import GlitchCLI, fit_command
from gravityaudit.shipped_configs import config_path, resolve_config_args
from gravityaudit.checkpoints import find_checkpoint

SHIPPED = ["demo", "merged_cnn", "resnet18_single_1s", "resnet18_attention", "vit_attention"]
COLUMNS = ["test/acc", "test/balanced_acc", "test/f1_macro", "test/top3_acc"]


def train_and_test(name: str, data: Path, root: Path, max_epochs: int | None, overrides: list[str]) -> dict:
    "Fit config `name` on `data` under `root`, test its best checkpoint; seconds, epochs and test metrics."
    common = ["--config", str(config_path(name)), "--data.data", str(data), "--trainer.default_root_dir", str(root),
              "--trainer.enable_progress_bar", "false", "--wandb", "false", *overrides]
    extra = ["--trainer.max_epochs", str(max_epochs)] if max_epochs else []
    start = time.perf_counter()
    fit_command([*common, *extra])
    seconds = time.perf_counter() - start
    best = find_checkpoint(root, "best")
    cli = GlitchCLI(args=["test", *resolve_config_args([*common, "--ckpt_path", str(best)])])
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items() if k.startswith("test/")}
    run = best.parent.parent
    calibration = json.loads((run / "calibration.json").read_text())["best"] if (run / "calibration.json").is_file() else {}
    import pandas as pd
    epochs = int(pd.read_csv(run / "metrics.csv")["epoch"].max()) + 1
    return dict(config=name, seconds=seconds, epochs=epochs, ece_after=calibration.get("ece_after", float("nan")), **metrics)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="a Gravity Spy-layout HDF5 file with train/validation/test splits")
    p.add_argument("--configs", nargs="+", default=SHIPPED, help=f"training configs (default: {' '.join(SHIPPED)})")
    p.add_argument("--max-epochs", type=int, help="override every config's max_epochs (early stopping still applies)")
    p.add_argument("--root", type=Path, help="folder for the runs (default: a new temporary folder)")
    a = p.parse_args(argv)
    if not a.data.is_file(): p.error(f"--data {a.data} does not exist")
    root = a.root or Path(tempfile.mkdtemp(prefix="gravityaudit-accuracy-"))
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    print(f"data: {a.data}; device: {device}; load average {os.getloadavg()[0]:.1f}; runs under {root}")
    rows = []
    for name in a.configs:
        rows.append(train_and_test(name, a.data, root / name, a.max_epochs, overrides))
        r = rows[-1]
        print(f"  {name}: {r['seconds']:.0f} s, test acc {r.get('test/acc', float('nan')):.4f}, macro-F1 {r.get('test/f1_macro', float('nan')):.4f}", flush=True)
    print("\n| config | epochs | fit time | test accuracy | balanced accuracy | macro-F1 | top-3 | ECE (calibrated) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        values = " | ".join(f"{r.get(c, float('nan')):.4f}" for c in COLUMNS)
        print(f"| {r['config']} | {r['epochs']} | {r['seconds'] / 60:.1f} min | {values} | {r['ece_after']:.4f} |")
    base = next((r for r in rows if r["config"] == "merged_cnn"), None)
    if base:
        for r in rows:
            if r is not base: print(f"{r['config']}: test accuracy {r['test/acc'] - base['test/acc']:+.4f} vs merged_cnn (the Gravity Spy baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
