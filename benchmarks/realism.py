"""Realism of the simulator, measured against real LIGO glitches.

Part 1, scans: the real glitches of `--real` (8 s of whitened strain centred on each) and `--n` simulated glitches
of each of their classes, in the same strain profile (4096 Hz, 8 s), go through the same `omega_scan`; the numbers
of `gravityaudit.realism.scan_features` are compared per class with the two-sample KS statistic.

Part 2, metadata: `--n-meta` simulated glitches of each class of Gravity Spy's O3 metadata sample (`--metadata`),
in Gravity Spy's own profile (the simulator's default: 16 s at 8192 Hz, tiles to 2048 Hz), against the real rows:
the loudest tile's frequency (Omicron's peakFreq) and SNR (Omicron's snr). The sample keeps only triggers of
Omicron SNR >= 15, so the simulated glitches get the same cut first. Omicron's duration and bandwidth describe
the whole trigger's tiles and are not compared with a scan's.

    python benchmarks/realism.py [--real PATH] [--metadata PATH] [--n 40] [--n-meta 40] [--seed 7] [--out DIR]
"""
from __future__ import annotations
import argparse, sys, time
from pathlib import Path
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real_o3a"


def scan_part(real_path: Path, n: int, seed: int) -> pd.DataFrame:
    "KS table of the real glitches' scan numbers against `n` simulated glitches per class."
    from gravityaudit.qscan import omega_scan
    from gravityaudit.realism import read_real_glitches, scan_features, simulated_scans, compare_features
    strain, real, fs = read_real_glitches(real_path)
    scans, peak = omega_scan(strain, fs, with_peak=True)
    real_features = pd.concat([real[["label"]], scan_features(scans, peak)], axis=1)
    classes = sorted(real.label.unique())
    sim_scans, sim_peak, sim = simulated_scans(classes, n, seed=seed, sample_rate=int(fs), segment_duration=strain.shape[1] / fs)
    sim_features = pd.concat([sim[["label"]], scan_features(sim_scans, sim_peak)], axis=1)
    return compare_features(real_features, sim_features)


def metadata_part(metadata_path: Path, n: int, seed: int, snr_cut: float = 15.0) -> pd.DataFrame:
    "Per class: real and simulated medians of peak frequency and tile SNR (both above `snr_cut`) and their KS statistics."
    from scipy.stats import ks_2samp
    from gravityaudit.realism import read_gravityspy_metadata, simulated_scans
    from gravityaudit.simulate import SimulationConfig
    real = read_gravityspy_metadata(metadata_path)
    classes = sorted(real.label.unique())
    cfg = SimulationConfig(seed=seed)                      # Gravity Spy's profile: 8192 Hz, 16 s
    _, peak, sim = simulated_scans(classes, n, config=cfg)
    sim["peak_frequency"], sim["tile_snr"] = peak["frequency"], peak["snr"]
    sim = sim[sim.tile_snr >= snr_cut]
    rows = []
    for label in classes:
        r, s = real[real.label == label], sim[sim.label == label]
        row = dict(label=label, n_real=len(r), n_simulated=len(s))
        for f in ("peak_frequency", "tile_snr"):
            row[f"real_{f}"] = float(r[f].median())
            row[f"sim_{f}"] = float(s[f].median()) if len(s) else np.nan
            row[f"ks_{f}"] = float(ks_2samp(r[f], s[f]).statistic) if len(s) else 1.0
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", type=Path, default=REAL / "glitches_o3a.npz")
    p.add_argument("--metadata", type=Path, default=REAL / "gravityspy_o3a_metadata_sample.csv")
    p.add_argument("--n", type=int, default=40, help="simulated glitches per class for the scan comparison")
    p.add_argument("--n-meta", type=int, default=40, help="simulated glitches per class for the metadata comparison")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, help="folder for the tables (CSV)")
    a = p.parse_args(argv)
    pd.set_option("display.width", 200)
    t0 = time.perf_counter()
    scans = scan_part(a.real, a.n, a.seed)
    print(f"== scans: {a.real.name} against {a.n} simulated glitches per class (4096 Hz, 8 s), KS statistic per number")
    print(scans.pivot(index="label", columns="feature", values="ks").round(2).to_string())
    summary = scans.groupby("label").ks.mean()
    print("mean KS per class: " + ", ".join(f"{k} {v:.2f}" for k, v in summary.items()) + f"; overall {scans.ks.mean():.3f}")
    print("medians, real -> simulated:")
    med = scans.assign(pair=[f"{r:.3g} -> {s:.3g}" for r, s in zip(scans.real_median, scans.simulated_median)])
    print(med.pivot(index="label", columns="feature", values="pair").to_string())
    meta = metadata_part(a.metadata, a.n_meta, a.seed)
    print(f"\n== metadata: {a.metadata.name} against {a.n_meta} simulated glitches per class (8192 Hz, 16 s), tile SNR >= 15")
    print(meta.round(2).to_string(index=False))
    print(f"mean KS: peak frequency {meta.ks_peak_frequency.mean():.3f}, tile SNR {meta.ks_tile_snr.mean():.3f}")
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        scans.to_csv(a.out / "realism_scans.csv", index=False); meta.to_csv(a.out / "realism_metadata.csv", index=False)
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
