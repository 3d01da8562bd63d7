"""Benchmark of `gravityaudit build`: triggers/s from local strain files, fetching timed apart from scanning.

Writes GWOSC-format strain files for H1 and L1 (`gravityaudit.local_archive.write_archive`, glitches injected) and a
table of N triggers at random times, then measures, on this machine:
  1. fetching alone: every trigger's segment read from the files (`build.fetch_segments`, chunk by chunk), one process;
  2. scanning alone: `build.scan_segments` + compression of those segments, one process, one thread;
  3. whole builds (`build.build_dataset`: plan, Dask tasks, chunk files, assembly of dataset.h5) on a LocalCluster of
     1 and 2 workers (one thread each), timed end to end, cluster start-up included and also given apart.
From the worker time per trigger measured with 1 worker (fetch + scan + compression, on a core of its own) and the
writer's time per trigger (chunk files + assembly, serial in the client), it projects the time for 600,000 triggers (Gravity Spy's O3 release, H1 +
L1) on N workers: 600,000 x (max(worker time / N, the writer's time keeping a chunked trigger) + its time assembling one). Open data fetched from GWOSC over the network costs
more than local files: a first fetch downloads each 4096 s file once (then it is cached), which this benchmark does
not measure.
Usage: python benchmarks/build.py [N_TRIGGERS] [CHUNK_SIZE]   (defaults: 256 triggers, chunks of 32)
"""
import os, sys, time, tempfile
from pathlib import Path
import numpy as np
import pandas as pd

O3_TRIGGERS = 600_000
GPS_START = 1238166018                     # the start of O3a; any GPS time would do


def write_strain(folder: Path, seconds: int) -> None:
    "GWOSC-format strain files for H1 and L1, `seconds` long, with a few glitches injected."
    from gravityaudit.local_archive import write_archive
    for k, ifo in enumerate(("H1", "L1")):
        write_archive(folder, ifo, GPS_START, seconds, glitches=[(GPS_START + 100 + 50 * i, "Blip", 20.0) for i in range(4)], seed=k)


def trigger_table(n: int, seconds: int) -> pd.DataFrame:
    "N triggers at random times (seed 0), half H1 and half L1, away from the files' edges."
    rng = np.random.default_rng(0)
    return pd.DataFrame({"gravityspy_id": [f"bench{i:06d}" for i in range(n)], "ifo": np.where(np.arange(n) % 2, "L1", "H1"),
                         "event_time": GPS_START + rng.uniform(8, seconds - 8, n)})


def main(argv):
    import torch
    from gravityaudit import build as B
    from gravityaudit.layout import pack_views
    from gravityaudit.open_strain import strain_source
    torch.set_num_threads(1)
    n = int(argv[0]) if argv else 256
    chunk_size = int(argv[1]) if len(argv) > 1 else 32
    seconds = 1024
    print(f"cores available: {B.available_cores()}, load average: {os.getloadavg()[0]:.1f} (the machine may be shared)")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        write_strain(d / "strain", seconds)
        triggers = trigger_table(n, seconds)
        source, profile = strain_source(str(d / "strain")), B.StrainProfile()
        chunks = B.plan_chunks(triggers, chunk_size)

        t = time.perf_counter()
        fetched = [B.fetch_segments(source, chunk, profile) for chunk in chunks]
        fetch = time.perf_counter() - t
        segments = np.stack([found[r][0] for found, _ in fetched for r in sorted(found)])
        centers = np.array([found[r][1] for found, _ in fetched for r in sorted(found)])
        print(f"fetch alone (local GWOSC files, {len(chunks)} chunks of {chunk_size}): {n / fetch:.0f} triggers/s ({1e3 * fetch / n:.1f} ms each)")

        B.scan_segments(segments[:2], centers[:2], profile.sample_rate)             # warm up
        t = time.perf_counter()
        views, *_ = B.scan_segments(segments, centers, profile.sample_rate)
        scan = time.perf_counter() - t
        t = time.perf_counter()
        for v in views: pack_views(v)
        pack = time.perf_counter() - t
        print(f"scan alone (omega_scan, batches of 32, 1 thread): {n / scan:.1f} triggers/s ({1e3 * scan / n:.1f} ms each); "
              f"compression {1e3 * pack / n:.1f} ms each")

        per_trigger = {}
        for workers in (1, 2):
            t = time.perf_counter()
            with B.dask_client(workers): startup = time.perf_counter() - t          # start-up and shut-down of the cluster alone
            t = time.perf_counter()
            summary = B.build_dataset(triggers, source, d / f"out{workers}", profile, workers=workers, chunk_size=chunk_size, progress=False)
            seconds_total = time.perf_counter() - t
            worker = (summary["fetch_seconds"] + summary["scan_seconds"] + summary["pack_seconds"]) / n
            per_trigger[workers] = (worker, summary["save_seconds"] / n, summary["write_seconds"] / n)
            print(f"build on {workers} worker(s): {seconds_total:.1f} s = {n / seconds_total:.1f} triggers/s end to end (cluster start-up "
                  f"~{startup:.1f} s included); in the workers {1e3 * summary['fetch_seconds'] / n:.1f} ms fetching + "
                  f"{1e3 * summary['scan_seconds'] / n:.1f} ms scanning + {1e3 * summary['pack_seconds'] / n:.1f} ms compressing per trigger; "
                  f"in the client (the one writer) {1e3 * summary['save_seconds'] / n:.2f} ms keeping chunks + "
                  f"{1e3 * summary['write_seconds'] / n:.2f} ms assembling dataset.h5 per trigger")
        worker, keep, assemble = per_trigger[1]  # a worker with a core of its own (with 2 here, they share 2 cores with the client)
        print(f"projected for {O3_TRIGGERS:,} triggers from the 1-worker run (worker time {1e3 * worker:.1f} ms per trigger; the "
              f"writer keeps {1 / keep:.0f} chunked triggers/s while the workers run, then assembles {1 / assemble:.0f}/s; local "
              "strain files, so no download):")
        for workers in (1, 2, 16, 64, 256, 1024):
            hours = O3_TRIGGERS * (max(worker / workers, keep) + assemble) / 3600
            print(f"  {workers:5d} workers: {hours:7.2f} h")


if __name__ == "__main__":
    main(sys.argv[1:])
