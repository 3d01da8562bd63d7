"""How long the taxonomy audit takes for a Gravity Spy-sized set (8,583 glitches) with embeddings given, by stage.

Builds synthetic 8,583 x 128 embedding vectors with every taxonomy failure planted, their metadata and a real-layout
HDF5 file (for the figures and the explorer's thumbnails), then runs `gravityaudit audit --explorer` in a FRESH process (so UMAP's numba compilation is
counted) limited to 2 threads, and prints the time of each stage. The baseline, run in the same fresh process, is the
original study's pipeline on the same vectors: a single 2-D UMAP + HDBSCAN, nothing else.
Target: the whole audit (UMAP, HDBSCAN, evidence, tables, figures, explorer) <= 90 s on 2 cores.

    python benchmarks/audit_speed.py [--n 8583] [--dim 128] [--keep DIR]
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from gravityaudit.audit import run_audit
from gravityaudit.files import read_embeddings
from gravityaudit.clustering import fit_map, fit_clusters
d = sys.argv[1]
result = run_audit(f"{d}/set.h5", f"{d}/embeddings.h5", f"{d}/out", explorer=True, overwrite=True)
total, audit_end = time.perf_counter() - t0, time.time()
t1 = time.perf_counter()
ids, vectors, _ = read_embeddings(f"{d}/embeddings.h5")
coords, _ = fit_map(vectors, 2, 30, 0.1, "cosine", 42, "cpu")
labels, *_ = fit_clusters(coords, 50, 50)
baseline = time.perf_counter() - t1
print(json.dumps(dict(total=total, audit_end=audit_end, stages=result.timings, baseline=baseline, clusters=len(result.clusters),
                      modes=result.clusters.failure_mode.value_counts().to_dict(), issues=len(result.label_issues), novel=len(result.novel))))
"""


def build(d: Path, n: int, dim: int, seed: int = 0):
    "Synthetic vectors, metadata and a real-layout HDF5 (cheap gzip-friendly images) for `n` glitches."
    from gravityaudit.testing import synthetic_taxonomy
    from gravityaudit.files import write_embeddings, write_table
    from gravityaudit.layout import GlitchWriter
    per_family = int(np.ceil(n / 11.1))
    vectors, meta = synthetic_taxonomy(n_per_family=per_family, dim=dim, seed=seed)
    keep = np.sort(np.random.default_rng(seed).choice(len(meta), size=min(n, len(meta)), replace=False))
    vectors, meta = vectors[keep], meta.iloc[keep].reset_index(drop=True)
    write_table(meta, d / "metadata.csv")
    write_embeddings(d / "embeddings.h5", meta.gravityspy_id.to_numpy(), vectors, attrs={})
    families = sorted(meta.true_family.unique())
    with GlitchWriter(d / "set.h5") as w:
        for r in meta.itertuples():
            views = np.zeros((4, 140, 170), np.float32)
            views[:, 10 + 9 * families.index(r.true_family), 40:130] = 1.0
            w.add(r.gravityspy_id, r.label, r.sample_type, views)
    return len(meta)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=8583); p.add_argument("--dim", type=int, default=128)
    p.add_argument("--threads", type=int, default=2); p.add_argument("--keep", default=None)
    args = p.parse_args(argv)
    d = Path(args.keep or tempfile.mkdtemp(prefix="audit_speed_"))
    d.mkdir(parents=True, exist_ok=True)
    try: return measure(d, args)
    finally:
        if not args.keep: shutil.rmtree(d, ignore_errors=True)      # without --keep the built set goes with the run


def measure(d: Path, args) -> int:
    "Build (or reuse) the set in `d`, audit it in a fresh process and print the stage times."
    t = time.perf_counter()
    n = build(d, args.n, args.dim) if not (d / "set.h5").exists() else len(__import__("pandas").read_csv(d / "metadata.csv"))
    print(f"built {n} x {args.dim} synthetic vectors + metadata + HDF5 in {time.perf_counter() - t:.1f} s ({d})")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "NUMBA_NUM_THREADS": str(args.threads),
           "OPENBLAS_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads), "MPLBACKEND": "Agg"}
    start = time.time()
    run = subprocess.run([sys.executable, "-c", CHILD, str(d)], env=env, capture_output=True, text=True)
    if run.returncode: print(run.stdout, run.stderr); return run.returncode
    r = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"\naudit of {n} glitches in a fresh process, {args.threads} threads (cores on this machine: {os.cpu_count()})")
    print(f"{'stage':<14}{'seconds':>9}")
    for k, v in r["stages"].items(): print(f"{k:<14}{v:>9.1f}")
    print(f"{'audit total':<14}{r['total']:>9.1f}   (fresh process, from its start to the audit's last file, interpreter and imports "
          f"included: {r['audit_end'] - start:.1f} s; target <= 90 s)")
    print(f"{'baseline':<14}{r['baseline']:>9.1f}   (original study: one 2-D UMAP + HDBSCAN, warm, same process)")
    print(f"ratio audit / baseline: {r['total'] / r['baseline']:.2f}")
    print(f"clusters {r['clusters']}, modes {r['modes']}, label issues {r['issues']}, novel candidates {r['novel']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
