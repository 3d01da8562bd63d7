"""Simulation to reality: train on simulated scans only, classify real LIGO glitches from their strain.

1. Simulates a Gravity Spy-sized set (8,583 glitches, v1 class balance, scenarios off: labels = truth) in the
   profile `classify` sees (8 s of 4096 Hz strain, configs/simulate/open_data_4096.yaml);
2. trains a shipped config on it (the demo config by default) and scores its best checkpoint on the simulated
   test split;
3. classifies the real segments (8 s centred on each glitch) through `classify_strain`, exactly as a user would,
   and prints accuracy, per-class accuracy and the real glitches' confusion.

The checkpoint never sees real data. Everything is kept under `--out` (default runs/sim_to_real): the simulated
set, the training run with its best checkpoint, and `real_predictions.csv`. A rerun reuses a simulated set that
is already complete (`--resimulate` to make it again). Runs in under ~30 minutes on 2 CPU cores at its defaults.

    python benchmarks/sim_to_real.py [--real PATH] [--n N] [--config demo] [--out runs/sim_to_real] [--seed S]
           [--max-epochs E] [--resimulate] [--workers W] [-- --trainer.accelerator gpu ...]

Arguments after `--` go to `gravityaudit fit` unchanged (e.g. `-- --trainer.accelerator gpu` for the demo config,
whose YAML asks for the CPU). Each config trains in its own folder, `--out/train-<config>`, so several configs can
be compared on one simulated set.
"""
from __future__ import annotations
import argparse, os, sys, time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "offline"); os.environ.setdefault("WANDB_SILENT", "true"); os.environ.setdefault("MPLBACKEND", "Agg")
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REAL = ROOT.parent / "shared" / "data" / "real_o3a" / "glitches_o3a.npz"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", type=Path, default=DEFAULT_REAL, help=f"an .npz of real glitches (default: {DEFAULT_REAL})")
    p.add_argument("--n", type=int, default=None, help="glitches to simulate (default: Gravity Spy's 8,583)")
    p.add_argument("--config", default="demo", help="training config name or YAML path (default: demo)")
    p.add_argument("--simulation", type=Path, default=ROOT / "configs" / "simulate" / "open_data_4096.yaml",
                   help="simulator config (default: the open-data profile)")
    p.add_argument("--out", type=Path, default=Path("runs/sim_to_real"))
    p.add_argument("--seed", type=int, default=2026, help="simulation seed")
    p.add_argument("--max-epochs", type=int, help="override the config's max_epochs")
    p.add_argument("--resimulate", action="store_true", help="simulate again even if the set exists")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="simulation worker processes (default: every core)")
    a = p.parse_args(argv)
    if not a.real.is_file(): p.error(f"--real {a.real} does not exist")
    sys.path.insert(0, str(Path(__file__).parent))
    from accuracy import train_and_test
    from gravityaudit.simulate import GRAVITY_SPY_SIZE, simulate
    from gravityaudit.classify import classify_strain
    from gravityaudit.checkpoints import find_checkpoint
    from gravityaudit.realism import read_real_glitches
    n = a.n or GRAVITY_SPY_SIZE
    sim = a.out / "simulate"
    times = {}
    t0 = time.perf_counter()
    if a.resimulate or not (sim / "metadata.csv").is_file():
        simulate(sim, n_glitches=n, balance="gravityspy", seed=a.seed, config=a.simulation, scenarios=False, workers=a.workers)
    times["simulate"] = time.perf_counter() - t0
    run = a.out / f"train-{Path(str(a.config)).stem}"
    result = train_and_test(a.config, sim / "dataset.h5", run, a.max_epochs, overrides)
    times["train"] = result["seconds"]
    best = find_checkpoint(run, "best")
    strain, real, fs = read_real_glitches(a.real)
    labels = real.label.to_numpy()
    t0 = time.perf_counter()
    table = classify_strain(best, strain, fs)
    times["classify"] = time.perf_counter() - t0
    table.insert(1, "true_label", labels)
    table.to_csv(a.out / "real_predictions.csv", index=False)
    right = table.label == table.true_label
    import torch
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    print(f"\ndevice: {device}; training overrides: {' '.join(overrides) or 'none'}")
    print(f"simulated set: {sim} ({n} glitches, {a.simulation.name}); checkpoint: {best}")
    print(f"simulated test split ({a.config}): accuracy {result['test/acc']:.3f}, balanced {result['test/balanced_acc']:.3f}, "
          f"macro-F1 {result['test/f1_macro']:.3f}, {result['epochs']} epochs")
    print(f"real glitches ({a.real.name}, {len(table)}): accuracy {right.mean():.3f}")
    per_class = right.groupby(table.true_label).agg(["sum", "count", "mean"])
    for label, r in per_class.iterrows(): print(f"  {label:18s} {int(r['sum'])}/{int(r['count'])}  {r['mean']:.2f}")
    print("confusion (rows: Gravity Spy label, columns: predicted):")
    print(pd.crosstab(table.true_label, table.label).to_string())
    print("times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
