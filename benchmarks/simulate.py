"""Benchmark of `gravityaudit simulate`: glitches/s, projected time for a Gravity Spy-sized set (8,583), peak memory.

Baseline in the same process: omega_scan alone on noise segments of the same length (the floor the simulator
cannot beat); the ratio says what strain generation, measurement, compression and HDF5 writing add on top.
Each run is one `simulate` call of N glitches timed end to end (worker start-up, imports and the last partial
batch included), so the projection for 8,583 glitches, 8,583 / (N / time), is on the pessimistic side. A last run
uses the cheaper profile of configs/simulate/open_data_4096.yaml (4096 Hz, 8 s: the format of open data and of
`classify`).
Usage: python benchmarks/simulate.py [N] [WORKERS ...]   (defaults: 640 glitches, workers 2)
"""
import os, sys, time, resource, tempfile
import numpy as np


def peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def timed_run(n: int, workers: int, profile: dict) -> float:
    "Seconds to simulate `n` glitches (seed 1) into a temporary folder."
    from gravityaudit import simulate as S
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        S.simulate(d, n_glitches=n, seed=1, workers=workers, config=profile or None, progress=False)
        return time.perf_counter() - t


def main(argv):
    from gravityaudit import simulate as S
    import torch
    from gravityaudit.qscan import omega_scan
    torch.set_num_threads(1)                                   # as simulate() and its workers do
    n = int(argv[0]) if argv else 640
    workers = [int(w) for w in argv[1:]] or [2]
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f} (the machine may be shared)")

    # baseline: omega_scan of pure noise, batches of 32, one process
    cfg = S.SimulationConfig()
    noise = S.noise_model("o3_h1", int(cfg.segment_duration * cfg.sample_rate), cfg.sample_rate)
    rng = np.random.default_rng(0)
    batch = np.stack([noise.noise(rng) for _ in range(32)])
    omega_scan(batch[:2], cfg.sample_rate)                    # warm up
    t = time.perf_counter(); reps = 3
    for _ in range(reps): omega_scan(batch, cfg.sample_rate)
    scan_rate = reps * 32 / (time.perf_counter() - t)
    print(f"baseline omega_scan only (1 process, defaults 8192 Hz, 16 s): {scan_rate:.1f} segments/s = {2 * scan_rate:.1f}/s on 2 cores at best")

    profiles = [(w, {}) for w in workers] + [(workers[-1], dict(sample_rate=4096, segment_duration=8.0))]
    for w, profile in profiles:
        seconds = timed_run(n, w, profile)
        rate = n / seconds
        name = "(4096 Hz, 8 s profile)" if profile else "(defaults: 8192 Hz, 16 s)"
        ratio = "" if profile else f" ({scan_rate / (rate / w):.2f}x the scan-only time per glitch and process)"
        print(f"simulate N={n} workers={w} {name}: {seconds:.1f} s, {rate:.1f} glitches/s{ratio}; "
              f"projected for {S.GRAVITY_SPY_SIZE}: {S.GRAVITY_SPY_SIZE / rate / 60:.1f} min (target <= 10 min)")
    print(f"peak memory: parent {peak_rss_mb():.0f} MB, largest worker {peak_rss_mb(resource.RUSAGE_CHILDREN):.0f} MB "
          f"(total <= parent + workers x worker; target <= 4 GB)")


if __name__ == "__main__":
    main(sys.argv[1:])
