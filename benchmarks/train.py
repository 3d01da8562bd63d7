"""Training benchmarks: training and inference throughput of merged_cnn (the Gravity Spy baseline, the
reference) and resnet18_attention in the same process on the same batch, on CPU (float32) and, when a CUDA GPU is
there, on it with bf16 autocast, then, when a simulated data set is
there, the wall time of the `demo` config fit and its calibration (ECE before / after temperature scaling).

    python benchmarks/train.py [--batch 16] [--steps 3] [--demo-data runs/demo/simulate/dataset.h5] [--threads N]
"""
from __future__ import annotations
import argparse, json, os, sys, tempfile, time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline"); os.environ.setdefault("WANDB_SILENT", "true"); os.environ.setdefault("MPLBACKEND", "Agg")
import torch
from gravityaudit.classifier import GlitchClassifier
from gravityaudit.train import fit_command, config_path
from gravityaudit.taxonomy import CLASSES_V1


def throughput(architecture: str, batch: torch.Tensor, labels: torch.Tensor, steps: int, device: str = "cpu") -> dict:
    "Training and inference glitches per wall second and per CPU second (this process, all threads) of one architecture; bf16 autocast on CUDA."
    torch.manual_seed(0)
    clf = GlitchClassifier(architecture, class_names=list(CLASSES_V1)).to(device)
    batch, labels = batch.to(device), labels.to(device)
    optimiser = torch.optim.AdamW(clf.parameters(), lr=1e-3)
    clf.train()
    def precision():
        "bf16 autocast on a GPU (what `bf16-mixed` does in Lightning), nothing on CPU."
        return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    def train_step():
        with precision(): loss = clf.loss(clf(batch), labels)
        optimiser.zero_grad(); loss.backward(); optimiser.step()
    def infer_step():
        with torch.no_grad(), precision(): clf.predict_proba(batch)
    def sync():
        if device == "cuda": torch.cuda.synchronize()
    out = {}
    for kind, step in (("train", train_step), ("infer", infer_step)):
        clf.train(kind == "train")
        step(); sync()                                               # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps): step()
        sync()
        n = steps * len(batch)
        out[kind] = (n / (time.perf_counter() - wall), n / (time.process_time() - cpu))
    return out


def demo_fit(data: Path, max_epochs: int | None) -> None:
    "Time `gravityaudit fit --config demo` on a simulated set and print its calibration and best validation metrics."
    root = Path(tempfile.mkdtemp(prefix="gravityaudit-bench-demo-"))
    extra = ["--trainer.max_epochs", str(max_epochs)] if max_epochs else []
    start, cpu = time.perf_counter(), time.process_time()
    fit_command(["--config", str(config_path("demo")), "--data.data", str(data), "--trainer.default_root_dir", str(root),
                 "--trainer.enable_progress_bar", "false", "--wandb", "false", *extra])
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    run = sorted(root.glob("version_*"))[-1]
    calibration = json.loads((run / "calibration.json").read_text())["best"]
    import pandas as pd
    metrics = pd.read_csv(run / "metrics.csv")
    val = metrics.dropna(subset=["val/balanced_acc"])
    best = val.loc[val["val/balanced_acc"].idxmax()]
    print(f"demo fit on {data} ({len(pd.read_csv(data.parent / 'metadata.csv'))} glitches): {seconds:.0f} s wall, {cpu_seconds:.0f} CPU-seconds "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores), "
          f"{int(val['epoch'].max()) + 1} epochs, torch threads {torch.get_num_threads()}")
    print(f"  best epoch {int(best['epoch'])}: val acc {best['val/acc']:.3f}, balanced acc {best['val/balanced_acc']:.3f}, "
          f"macro F1 {best['val/f1_macro']:.3f}, top-3 {best['val/top3_acc']:.3f}")
    print(f"  calibration (validation split, {calibration['glitches']} glitches): T = {calibration['temperature']:.3f}, "
          f"ECE {calibration['ece_before']:.4f} -> {calibration['ece_after']:.4f}, NLL {calibration['nll_before']:.3f} -> {calibration['nll_after']:.3f}")
    print(f"  run folder: {run}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16, help="glitches per batch (4 views of 140 x 170 each)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    p.add_argument("--gpu-batch", type=int, default=128, help="glitches per batch on a GPU (bf16)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--demo-data", default="runs/demo/simulate/dataset.h5", help="simulated data set for the demo fit")
    p.add_argument("--demo-epochs", type=int, default=None, help="override the demo config's max_epochs")
    p.add_argument("--demo-only", action="store_true", help="skip the throughput measurements")
    a = p.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    print(f"device: CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()}); "
          f"GPU: {'available' if torch.cuda.is_available() else 'none in this environment (no GPU figures)'}")
    if a.demo_only: return demo_or_skip(Path(a.demo_data), a.demo_epochs)
    g = torch.Generator().manual_seed(0)
    batch = torch.rand(a.batch, 4, 1, 140, 170, generator=g)
    labels = torch.randint(0, len(CLASSES_V1), (a.batch,), generator=g)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        size = a.batch if device == "cpu" else a.gpu_batch
        if size != len(batch):
            batch = torch.rand(size, 4, 1, 140, 170, generator=g)
            labels = torch.randint(0, len(CLASSES_V1), (size,), generator=g)
        steps = a.steps if device == "cpu" else 5 * a.steps
        rates = {name: throughput(name, batch, labels, steps, device) for name in ("merged_cnn", "resnet18_attention")}
        base = rates["merged_cnn"]
        where = f"CPU, float32 (load average {load:.1f} on {os.cpu_count()} cores)" if device == "cpu" else f"{torch.cuda.get_device_name(0)}, bf16 autocast"
        print(f"throughput, batch {size} x 4 views x 140 x 170, {where}:")
        for name, r in rates.items():
            for kind in ("train", "infer"):
                wall, cpu = r[kind]
                print(f"  {name:<20} {kind:<5} {wall:8.2f} glitches/s wall ({wall / base[kind][0]:5.2f} x merged_cnn)   "
                      f"{cpu:8.2f} glitches per CPU-second ({cpu / base[kind][1]:5.2f} x merged_cnn)")
    return demo_or_skip(Path(a.demo_data), a.demo_epochs)


def demo_or_skip(data: Path, epochs: int | None) -> int:
    "The demo fit if the simulated set exists, else a line saying how to make it."
    if data.is_file(): demo_fit(data, epochs)
    else: print(f"demo fit skipped: no simulated set at {data} (gravityaudit simulate --out {data.parent})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
