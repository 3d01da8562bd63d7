"""Benchmark omega scans: glitches/s (4 views each) of `omega_scan` at batch 64 against gwpy on the same strain.

The strain is 8 s of coloured Gaussian noise at 4096 Hz with a sine-Gaussian glitch (random frequency and Q,
SNR ~10) in the middle, the simulator's typical input. The gwpy baseline is `gravityaudit.qscan.reference_scan`:
gwpy's own whitening and `q_scan` once per glitch, then `QGram.interpolate` for each of the four views (the
cheapest faithful use of gwpy; Gravity Spy itself calls `q_transform` once per view, which is slower still and
is timed too with `--gravityspy`). Optionally ml4gw's `QScan` is timed on the same batch (`--ml4gw`).

On a machine shared by many processes, OpenMP's busy-waiting makes torch's 2-thread ops stall; run with
`OMP_WAIT_POLICY=PASSIVE` (or `--threads 1`) there. The last line gives glitches per CPU-second, which the load
disturbs much less than wall-clock rates.

With `--real PATH` (an .npz of whitened strain with `strain`, `label`, `sample_rate`, `glitch_time`, such as
`../shared/data/real_o3a/glitches_o3a.npz`) it also scans those real glitches (8 s centred on each) and prints the
Pearson r of `omega_scan` against gwpy's `TimeSeries.q_transform` per class, for two gwpy calls: Gravity Spy's
(`gps` = the centre, `search=0.5`: the plane is chosen by the loudest tile within 0.25 s of the trigger, as
`omega_scan` chooses it) and a plain one (no `gps`: the loudest tile anywhere in the segment, including the
seconds the whitening filter corrupts). gwpy's rows stop at the tiling's top (1291 Hz at 4096 Hz), so they are
interpolated in log frequency onto the fixed 10-2048 Hz grid, zero above.

    .venv/bin/python benchmarks/qscan.py [--batch-size 64] [--repeats 3] [--gwpy-glitches 4] [--threads N] [--device cpu|cuda] [--ml4gw] [--gravityspy] [--real PATH]
"""
from __future__ import annotations
import argparse, math, os, time
import numpy as np
import torch


def make_strain(n_glitches: int, sample_rate: int = 4096, seconds: float = 8.0, seed: int = 0) -> np.ndarray:
    "Coloured noise segments with one sine-Gaussian each at the centre, SNR ~10."
    from scipy.signal import welch
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    f = np.fft.rfftfreq(n, 1 / sample_rate)
    shape = (1 + (30 / np.maximum(f, 1)) ** 4) ** 0.5 * (1 + (f / 500) ** 2) ** 0.5
    t = np.arange(n) / sample_rate - seconds / 2
    out = np.empty((n_glitches, n))
    for i in range(n_glitches):
        noise = np.fft.irfft((rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)) * shape, n=n)
        f0, q = np.exp(rng.uniform(np.log(20), np.log(1000))), rng.uniform(4, 60)
        tau = q / (math.sqrt(2) * math.pi * f0)
        glitch = np.exp(-(t / tau) ** 2) * np.sin(2 * math.pi * f0 * t)
        fw, psd = welch(noise, fs=sample_rate, nperseg=2 * sample_rate, average="median")
        g = np.fft.rfft(glitch) / sample_rate
        rho = np.sqrt(4 * np.sum(np.abs(g[1:]) ** 2 / np.interp(f[1:], fw, psd)) * f[1])
        out[i] = noise + glitch * 10 / rho
    return out


CPU_SECONDS: dict[str, float] = {}


def timed(fn, repeats: int, name: str = "") -> float:
    "Median wall time (s) of `repeats` calls of `fn` (after one warm-up call); CPU seconds per call go to CPU_SECONDS."
    fn()
    times, cpu = [], []
    for _ in range(repeats):
        if torch.cuda.is_available(): torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time(); fn()
        if torch.cuda.is_available(): torch.cuda.synchronize()
        times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
    CPU_SECONDS[name] = float(np.median(cpu))
    return float(np.median(times))


def gravityspy_recipe(x: np.ndarray, sample_rate: float) -> None:
    "Gravity Spy's own call pattern: one gwpy q_transform per view."
    import warnings
    from gwpy.timeseries import TimeSeries
    data = TimeSeries(x, sample_rate=sample_rate)
    c = data.duration.value / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for d in (0.5, 1.0, 2.0, 4.0):
            data.q_transform(qrange=(4, 64), frange=(10, 2048), gps=c, search=0.5, tres=d / 170, fres=140, logf=True,
                             outseg=(c - d / 2, c + d / 2), whiten=True, fduration=2)


def real_strain_agreement(path: str) -> None:
    "Print omega_scan's Pearson r against gwpy's q_transform on the real glitches in `path`, per class and per glitch."
    import pandas as pd
    from gravityaudit.qscan import omega_scan, gwpy_q_transform
    from gravityaudit.realism import read_real_glitches
    strain, real, fs = read_real_glitches(path)                      # 8 s centred on each glitch
    t0 = time.perf_counter()
    ours = omega_scan(strain, fs)
    t_ours = time.perf_counter() - t0
    pearson = lambda a, b: float(np.mean([np.corrcoef(u.ravel(), w.ravel())[0, 1] for u, w in zip(a, b)]))
    rows = []
    for i, x in enumerate(strain):
        row = dict(label=real.label[i], ifo=real.ifo[i] if "ifo" in real else "")
        for name, search in (("gravityspy", "trigger"), ("plain", "segment")):
            row[f"r_{name}"] = pearson(ours[i], gwpy_q_transform(x, fs, search=search))
        rows.append(row)
    df = pd.DataFrame(rows)
    print(f"\nreal glitches: {len(df)} from {path}; omega_scan {t_ours:.1f} s for all")
    print("Pearson r of omega_scan vs gwpy q_transform (mean over the 4 views), per class: mean / worst glitch")
    table = df.groupby("label")[["r_gravityspy", "r_plain"]].agg(["mean", "min"]).round(3)
    print(table.to_string())
    print(f"overall: gravityspy call {df.r_gravityspy.mean():.3f} (worst {df.r_gravityspy.min():.3f}), "
          f"plain call {df.r_plain.mean():.3f} (worst {df.r_plain.min():.3f})")
    worst = df.nsmallest(3, "r_plain")
    print("lowest against the plain call:\n" + worst.round(3).to_string())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--gwpy-glitches", type=int, default=4)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--ml4gw", action="store_true", help="also time ml4gw's QScan on the same batch")
    p.add_argument("--gravityspy", action="store_true", help="also time Gravity Spy's one-q_transform-per-view recipe")
    p.add_argument("--real", help="an .npz of real glitches: print the per-class agreement with gwpy on them")
    args = p.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    from gravityaudit.qscan import omega_scan, reference_scan
    fs = 4096
    strain = make_strain(args.batch_size, fs)
    print(f"strain: {args.batch_size} x 8 s at {fs} Hz; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {args.device}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    x = torch.from_numpy(strain).to(args.device)
    t_ours = timed(lambda: omega_scan(x, fs), args.repeats, "ours")
    ours = args.batch_size / t_ours
    print(f"omega_scan (batch {args.batch_size}):   {ours:8.1f} glitches/s  ({t_ours:.2f} s per batch)")

    k = min(args.gwpy_glitches, args.batch_size)
    t_ref = timed(lambda: [reference_scan(s, fs) for s in strain[:k]], 1, "gwpy")
    ref = k / t_ref
    print(f"gwpy reference_scan (one q_scan + 4 interpolations per glitch): {ref:8.2f} glitches/s  ({t_ref / k:.2f} s per glitch)")
    if args.gravityspy:
        t_gs = timed(lambda: [gravityspy_recipe(s, fs) for s in strain[:k]], 1)
        print(f"gwpy q_transform x 4 views (Gravity Spy's recipe): {k / t_gs:8.2f} glitches/s  -> omega_scan is {ours / (k / t_gs):.1f}x")
    if args.ml4gw:
        from ml4gw.transforms import QScan, Whiten, SpectralDensity
        scanner = QScan(duration=4.0, sample_rate=fs, spectrogram_shape=(140, 170), qrange=[4, 64], frange=[10, 1291]).to(args.device)
        seg = x[:, 2 * fs: 6 * fs].float()[:, None]            # ml4gw scans a 4 s window (no whitening timed)
        t_ml = timed(lambda: scanner(seg), 1)
        print(f"ml4gw QScan (4 s window, 1 view, no whitening, batch {args.batch_size}): {args.batch_size / t_ml:8.1f} scans/s "
              f"-> {args.batch_size / t_ml / 4:.1f} glitches/s for 4 views")
    print(f"ratio omega_scan / gwpy reference: {ours / ref:.1f}x   (targets: >= 20 glitches/s and >= 10x on 2 CPU cores)")
    cpu_ours, cpu_ref = args.batch_size / CPU_SECONDS["ours"], k / CPU_SECONDS["gwpy"]
    print(f"per CPU-second (robust to a shared machine): omega_scan {cpu_ours:.1f} glitches, gwpy {cpu_ref:.2f} glitches, ratio {cpu_ours / cpu_ref:.1f}x")
    if args.real: real_strain_agreement(args.real)


if __name__ == "__main__":
    main()
