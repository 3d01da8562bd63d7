"""Benchmark the GravitySpyDataModule: glitches/s for one full pass over an 8,583-glitch file (4 views each).

Compares the naive reader (one small HDF5 dataset per view, nested groups, `cache=False`) with the fast path
(the packed, memory-mapped cache, `cache=True`), both through real DataLoaders with the same workers and batch size.
The file is written with GlitchWriter (random images, uncompressed like the real v1d0 file) into /tmp and reused.

    .venv/bin/python benchmarks/datamodule.py [--n 8583] [--workers 2] [--batch-size 64] [--dir /tmp/gravityaudit-bench]
"""
from __future__ import annotations
import argparse, gc, os, resource, shutil, sys, time
from pathlib import Path
import numpy as np
import pandas as pd
import h5py


def make_file(directory: Path, n: int, seed: int = 0) -> Path:
    "Write (or reuse) an n-glitch Gravity Spy-layout HDF5 file of random images plus metadata.csv."
    from gravityaudit.layout import GlitchWriter
    from gravityaudit.taxonomy import CLASSES_V1
    path = directory / "bench.h5"
    if path.exists() and (directory / "metadata.csv").exists():
        with h5py.File(path, "r") as f:
            if f.attrs.get("n_glitches") == n: return path
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, len(CLASSES_V1) + 1); weights /= weights.sum()    # skewed, like the real set
    labels = rng.choice(CLASSES_V1, size=n, p=weights)
    sample_types = rng.choice(["train", "validation", "test"], size=n, p=[0.7, 0.15, 0.15])
    ids = [f"bench{i:06d}" for i in range(n)]
    t0 = time.perf_counter()
    with GlitchWriter(path, attrs={"n_glitches": n, "source": "benchmarks/datamodule.py"}, compression=None) as w:
        for gid, label, st in zip(ids, labels, sample_types):
            w.add(gid, label, st, rng.random((4, 140, 170), dtype=np.float32))
    pd.DataFrame(dict(gravityspy_id=ids, label=labels, sample_type=sample_types)).to_csv(directory / "metadata.csv", index=False)
    print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB, {n} glitches) in {time.perf_counter() - t0:.0f} s")
    return path


def epoch_rate(dm, which: str = "predict") -> dict:
    "Glitches/s of one full pass of a dataloader (worker start-up included) and CPU ms per glitch (main + workers)."
    self0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    loader = getattr(dm, f"{which}_dataloader")()
    t0, n = time.perf_counter(), 0
    for batch in loader:
        assert batch["image"].shape[1:] == (4, 1, 140, 170)
        n += len(batch["index"])
    wall = time.perf_counter() - t0
    del loader, batch; gc.collect()                      # workers exit: their CPU time is counted in RUSAGE_CHILDREN
    self1, kids1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = lambda a, b: (b.ru_utime + b.ru_stime) - (a.ru_utime + a.ru_stime)
    return dict(n=n, rate=n / wall, cpu_ms=1000 * (cpu(self0, self1) + cpu(kids0, kids1)) / n)


def report(name: str, r: dict) -> None:
    print(f"{name:<30}: {r['rate']:7.0f} glitches/s  ({r['n']} glitches; {r['cpu_ms']:.2f} CPU-ms per glitch, main + workers)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8583)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dir", default="/tmp/gravityaudit-bench")
    parser.add_argument("--clean", action="store_true", help="delete the benchmark files afterwards")
    parser.add_argument("--skip-in-process", action="store_true", help="skip the extra passes with 0 workers")
    parser.add_argument("--rebuild-cache", action="store_true", help="delete the packed cache first (to time its build)")
    args = parser.parse_args(argv)
    from gravityaudit.data import GravitySpyDataModule
    import torch
    directory = Path(args.dir)
    path = make_file(directory, args.n)
    if args.rebuild_cache: shutil.rmtree(directory / f"{path.name}.packed", ignore_errors=True)
    common = dict(batch_size=args.batch_size, num_workers=args.workers)
    print(f"{args.n} glitches x 4 views, batch {args.batch_size}, {args.workers} workers, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} (torch threads {torch.get_num_threads()})")

    t0 = time.perf_counter()
    naive = GravitySpyDataModule(path, cache=False, **common); naive.setup()
    print(f"naive setup (reads every view once to check it): {time.perf_counter() - t0:.1f} s")
    naive_r = epoch_rate(naive); report("naive nested-group reader", naive_r)

    t0 = time.perf_counter()
    fast = GravitySpyDataModule(path, cache=True, **common); fast.setup()
    print(f"fast setup (packed cache built or reused): {time.perf_counter() - t0:.1f} s")
    fast_r = epoch_rate(fast); report("fast path (packed cache)", fast_r)
    report("fast path, shuffled train", epoch_rate(fast, "train"))
    print(f"ratio fast / naive ({args.workers} workers): {fast_r['rate'] / naive_r['rate']:.1f}x glitches/s, "
          f"{naive_r['cpu_ms'] / fast_r['cpu_ms']:.1f}x less CPU per glitch   (target: >= 2000 glitches/s and >= 3x)")
    if args.workers and not args.skip_in_process:   # the same passes read in the main process, for comparison
        naive0 = GravitySpyDataModule(path, cache=False, batch_size=args.batch_size, num_workers=0)
        naive0._table, naive0._store, naive0._classes = naive._table, naive._store, naive._classes   # already checked
        fast0 = GravitySpyDataModule(path, cache=True, batch_size=args.batch_size, num_workers=0); fast0.setup()
        n0, f0 = epoch_rate(naive0), epoch_rate(fast0)
        report("naive, in-process (0 workers)", n0); report("fast, in-process (0 workers)", f0)
        print(f"ratio fast / naive (0 workers): {f0['rate'] / n0['rate']:.1f}x glitches/s, {n0['cpu_ms'] / f0['cpu_ms']:.1f}x less CPU")
    print(f"load average now {os.getloadavg()[0]:.1f}: on a shared machine glitches/s follow the load; CPU-ms per glitch much less so")
    if args.clean: shutil.rmtree(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
