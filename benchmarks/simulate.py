"""Benchmark of `gravityaudit simulate`: glitches/s, projected time for a Gravity Spy-sized set (8,583), peak memory.

Baseline in the same process: omega_scan alone on noise segments of the same length (the floor the simulator
cannot beat); the ratio says what strain generation, measurement and HDF5 writing add on top. A last run uses the
cheaper profile (4096 Hz, 8 s segments: top scan rows blank, long glitches partly whitened away).
Usage: python benchmarks/simulate.py [N] [WORKERS ...]   (defaults: 192 glitches, workers 1 and 2)
"""
import os, sys, time, resource, tempfile
import numpy as np


def peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def main(argv):
    from gravityaudit import simulate as S
    import torch
    from gravityaudit.qscan import omega_scan
    torch.set_num_threads(1)                                   # as simulate() and its workers do
    n = int(argv[0]) if argv else 192
    workers = [int(w) for w in argv[1:]] or [1, 2]
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f} (the machine may be shared)")

    # baseline: omega_scan of pure noise, batches of 32, one process
    cfg = S.SimulationConfig()
    noise = S.noise_model("o3_h1", int(cfg.segment_duration * cfg.sample_rate))
    rng = np.random.default_rng(0)
    batch = np.stack([noise.noise(rng) for _ in range(32)])
    omega_scan(batch[:2], cfg.sample_rate)                    # warm up
    t = time.perf_counter(); reps = max(1, n // 32 // 2)
    for _ in range(reps): omega_scan(batch, cfg.sample_rate)
    scan_rate = reps * 32 / (time.perf_counter() - t)
    print(f"baseline omega_scan only (1 process): {scan_rate:.1f} segments/s")

    runs = [(w, {}) for w in workers] + [(1, dict(sample_rate=4096, segment_duration=8.0))]
    for w, profile in runs:
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            S.simulate(d, n_glitches=n, seed=1, workers=w, config=profile or None, progress=False)
            dt = time.perf_counter() - t
            size = os.path.getsize(os.path.join(d, "dataset.h5")) / 1e6
        rate = n / dt
        print(f"simulate N={n} workers={w} {'(4096 Hz, 8 s profile)' if profile else '(defaults: 8192 Hz, 16 s)'}: {dt:.1f} s, {rate:.1f} glitches/s, projected for {S.GRAVITY_SPY_SIZE}: "
              f"{S.GRAVITY_SPY_SIZE / rate / 60:.1f} min (target <= 10 min, >= 14.3 glitches/s); "
              f"ratio to scan-only baseline: {scan_rate / rate:.2f}x slower per glitch; file {size / n * 1000:.0f} kB/glitch")
    print(f"peak memory: parent {peak_rss_mb():.0f} MB, largest worker {peak_rss_mb(resource.RUSAGE_CHILDREN):.0f} MB "
          f"(total <= parent + workers x worker)")


if __name__ == "__main__":
    main(sys.argv[1:])
