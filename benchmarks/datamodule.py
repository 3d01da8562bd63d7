"""Benchmark the GravitySpyDataModule: glitches/s for one full pass over an 8,583-glitch file (4 views each).

Compares the naive reader (one small HDF5 dataset per view, nested groups, `cache=False`) with the fast path
(the packed cache, `cache=True`), both through the DataModule's real DataLoaders with the same num_workers and batch
size, then with 0 workers; also the fast path's items forced through worker processes (the previous design), to show
what sending 24 MB batches from a worker costs. Ends with a summary table and the target check.
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


def epoch_rate(make_loader) -> dict:
    "Glitches/s of one full pass of the loader `make_loader()` (worker start-up included) and CPU ms per glitch (main + workers)."
    self0, kids0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    loader = make_loader()
    t0, n = time.perf_counter(), 0
    for batch in loader:
        assert batch["image"].shape[1:] == (4, 1, 140, 170)
        n += len(batch["index"])
    wall = time.perf_counter() - t0
    del loader, batch; gc.collect()                      # workers exit: their CPU time is counted in RUSAGE_CHILDREN
    self1, kids1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = lambda a, b: (b.ru_utime + b.ru_stime) - (a.ru_utime + a.ru_stime)
    return dict(n=n, rate=n / wall, cpu_ms=1000 * (cpu(self0, self1) + cpu(kids0, kids1)) / n)


def warm_page_cache(path) -> float:
    "Read a file once, sequentially, so that it sits in the page cache as in every epoch after the first; seconds taken."
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        buffer = bytearray(64 << 20)
        while f.readinto(buffer): pass
    return time.perf_counter() - t0


def report(name: str, workers: int, r: dict) -> dict:
    print(f"{name:<44} {workers:>2} workers: {r['rate']:7.0f} glitches/s  ({r['n']} glitches; "
          f"{r['cpu_ms']:.2f} CPU-ms per glitch, main + workers)", flush=True)
    return dict(r, name=name, workers=workers)


def through_workers(dm, workers: int):
    "A loader of every glitch with the fast path's items forced through `workers` worker processes (batches sent in shared memory)."
    from torch.utils.data import DataLoader
    from gravityaudit.data import collate_glitches
    return DataLoader(dm.dataset(), batch_size=dm.batch_size, num_workers=workers, collate_fn=collate_glitches)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8583)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dir", default="/tmp/gravityaudit-bench")
    parser.add_argument("--clean", action="store_true", help="delete the benchmark files afterwards")
    parser.add_argument("--skip-in-process", action="store_true", help="skip the extra passes with 0 workers")
    parser.add_argument("--skip-forced", action="store_true", help="skip the pass that forces packed items through workers")
    parser.add_argument("--rebuild-cache", action="store_true", help="delete the packed cache first (to time its build)")
    parser.add_argument("--target", type=float, default=2000, help="glitches/s the fast path must reach (default 2000)")
    parser.add_argument("--target-ratio", type=float, default=3, help="fast / naive glitches/s it must reach (default 3)")
    args = parser.parse_args(argv)
    from gravityaudit.data import GravitySpyDataModule
    import torch
    directory = Path(args.dir)
    path = make_file(directory, args.n)
    if args.rebuild_cache: shutil.rmtree(directory / f"{path.name}.packed", ignore_errors=True)
    w = args.workers
    load0 = os.getloadavg()[0]
    print(f"{args.n} glitches x 4 views (140 x 170 float32), batch {args.batch_size}, {os.cpu_count()} CPUs, "
          f"load average {load0:.1f} (torch threads {torch.get_num_threads()})", flush=True)
    rows = []

    t0 = time.perf_counter()
    naive = GravitySpyDataModule(path, cache=False, batch_size=args.batch_size, num_workers=w); naive.setup()
    print(f"naive setup (reads every view once to check it): {time.perf_counter() - t0:.1f} s", flush=True)
    naive_r = report("naive nested-group reader", w, epoch_rate(naive.predict_dataloader)); rows.append(naive_r)

    t0 = time.perf_counter()
    fast = GravitySpyDataModule(path, cache=True, batch_size=args.batch_size, num_workers=w); fast.setup()
    print(f"fast setup (packed cache built or reused): {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"packed cache read once into the page cache (as the naive setup does for its file): "
          f"{warm_page_cache(fast._store.path):.1f} s", flush=True)
    fast_r = report("fast path (packed cache)", w, epoch_rate(fast.predict_dataloader)); rows.append(fast_r)
    print(f"  (plain packed copies are read in the main process: the loader has {fast.predict_dataloader().num_workers} "
          f"worker processes although num_workers={w})")
    rows.append(report("fast path, shuffled train split", w, epoch_rate(fast.train_dataloader)))
    if w and not args.skip_forced:
        rows.append(report("fast items forced through worker processes", w, epoch_rate(lambda: through_workers(fast, w))))
    if w and not args.skip_in_process:   # the same passes read in the main process, for comparison
        naive0 = GravitySpyDataModule(path, cache=False, batch_size=args.batch_size, num_workers=0)
        naive0._table, naive0._store, naive0._classes = naive._table, naive._store, naive._classes   # already checked
        fast0 = GravitySpyDataModule(path, cache=True, batch_size=args.batch_size, num_workers=0); fast0.setup()
        n0 = report("naive nested-group reader", 0, epoch_rate(naive0.predict_dataloader)); rows.append(n0)
        f0 = report("fast path (packed cache)", 0, epoch_rate(fast0.predict_dataloader)); rows.append(f0)

    print(f"\n== summary: {args.n} glitches, batch {args.batch_size}, load average {load0:.1f} -> {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs ==")
    print(f"{'reader':<44} {'workers':>7} {'glitches/s':>11} {'CPU-ms/glitch':>14}")
    for r in rows: print(f"{r['name']:<44} {r['workers']:>7} {r['rate']:>11.0f} {r['cpu_ms']:>14.2f}")
    ratio = fast_r["rate"] / naive_r["rate"]
    print(f"ratio fast / naive, {w} workers: {ratio:.1f}x glitches/s, {naive_r['cpu_ms'] / fast_r['cpu_ms']:.1f}x less CPU per glitch")
    if w and not args.skip_in_process:
        print(f"ratio fast / naive, 0 workers: {f0['rate'] / n0['rate']:.1f}x glitches/s, {n0['cpu_ms'] / f0['cpu_ms']:.1f}x less CPU per glitch")
    ok_rate, ok_ratio = fast_r["rate"] >= args.target, ratio >= args.target_ratio
    print(f"target: fast path with num_workers={w} >= {args.target:.0f} glitches/s: {fast_r['rate']:.0f} -> {'PASS' if ok_rate else 'FAIL'}")
    print(f"target: fast / naive >= {args.target_ratio:g}x: {ratio:.1f}x -> {'PASS' if ok_ratio else 'FAIL'}")
    print("on a shared machine glitches/s follow the load; CPU-ms per glitch much less so")
    if args.clean: shutil.rmtree(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
