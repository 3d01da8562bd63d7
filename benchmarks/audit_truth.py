"""Does the audit recover the taxonomy failures planted in a simulated set? Measured against the truth, per scenario.

For each seed: simulate a set with every scenario on (gravityaudit.simulate), embed it without labels
(gravityaudit.embed, SSL encoder), audit it (gravityaudit.audit.run_audit) and score its tables with
`gravityaudit.truth.score_against_truth`:
- over_split, over_compress, drift: is there a cluster with the matching failure mode holding >= 50% of the scenario?
- physical_split: is less than half of it called over_split?
- label noise: precision and recall of label_issues.csv against `label_is_noise` (targets >= 0.8 and >= 0.6);
- novel: recall of the novel family among the top 2 x (its size) rows of novel.csv (target >= 0.5);
and, per audit, the number of physical_split and new_class verdicts, and, per set audited with several UMAP seeds,
the agreement of the verdicts glitch by glitch (gravityaudit.truth.verdict_agreement).
A missed over_split, over_compress or drift target prints where its glitches went: one row per cluster with its
verdict and, for a continuum or a drift, the stretch of the planted coordinate it holds (gravityaudit.truth.scenario_spread).
The baseline, on the same clusters in the same process, is the original study's rule: entropy >= 2 bits ->
"over-splitting", purity <= 0.5 -> "over-compression" (both may fire), scored the same way.
Several seeds, one fixed set of thresholds (configs/audit/default.yaml): nothing is tuned per seed.

    python benchmarks/audit_truth.py [--n 2000] [--seeds 0 1] [--umap-seeds 42 7] [--ssl-epochs N] [--keep DIR]

With --keep DIR, simulated sets and embeddings already in DIR/seedN are reused; each audit goes to DIR/seedN/audit_umapS.
"""
import argparse, json, shutil, sys, tempfile, time
from pathlib import Path
import numpy as np
import pandas as pd


def baseline_modes(clusters: pd.DataFrame) -> pd.Series:
    "The original study's flags as failure modes: entropy >= 2 -> over_split (checked first), purity <= 0.5 -> over_compressed."
    return pd.Series(np.where(clusters.entropy_bits >= 2.0, "over_split", np.where(clusters.purity <= 0.5, "over_compressed", "clean")),
                     index=clusters.index)


def score_baseline(result, meta: pd.DataFrame) -> dict:
    "The original study's flags scored like the audit (its tables, with the flags in place of its verdicts)."
    from gravityaudit.truth import AuditTables, score_against_truth
    clusters = result.clusters.assign(failure_mode=baseline_modes(result.clusters))
    return score_against_truth(AuditTables(result.assignments, clusters, result.label_issues, result.novel), meta)


def prepare_seed(root: Path, n: int, seed: int, ssl_epochs: int) -> tuple[Path, dict]:
    "Simulate and embed one seed's set under `root` (kept when already there) and the seconds each step took."
    from gravityaudit.simulate import simulate
    from gravityaudit.embed import embed
    d = root / f"seed{seed}"
    times = {}
    t = time.perf_counter()
    if not (d / "dataset.h5").exists(): simulate(d, n_glitches=n, balance="gravityspy", seed=seed)
    times["simulate"] = time.perf_counter() - t; t = time.perf_counter()
    if not (d / "embeddings.h5").exists(): embed(d / "dataset.h5", encoder="ssl", out=d / "embeddings.h5", ssl_epochs=ssl_epochs, seed=seed)
    times["embed"] = time.perf_counter() - t
    return d, times


def audit_seed(d: Path, config=None, umap_seed: int | None = None):
    "Audit one prepared set (with `umap_seed` as the config's seed when given): the audit's score, the original flags' score, seconds."
    import dataclasses
    from gravityaudit.audit import run_audit
    from gravityaudit.evidence import AuditConfig
    cfg = AuditConfig.load(config)
    if umap_seed is not None: cfg = dataclasses.replace(cfg, seed=umap_seed)
    out = d / f"audit_umap{cfg.seed}"
    t = time.perf_counter()
    result = run_audit(d / "dataset.h5", d / "embeddings.h5", out, config=cfg, overwrite=True)
    meta = pd.read_csv(d / "metadata.csv", dtype={"gravityspy_id": str})
    return result.truth, score_baseline(result, meta), time.perf_counter() - t, result


def verdict(score: dict) -> dict:
    "Pass / fail per target."
    out = {k: bool(score[k]["recovered"]) for k in ("over_split", "over_compress", "drift", "physical_split") if k in score}
    if "label_noise" in score: out["label_noise"] = score["label_noise"]["precision"] >= 0.8 and score["label_noise"]["recall"] >= 0.6
    if "novel" in score: out["novel"] = score["novel"]["recall"] >= 0.5
    return out


def default_ssl_epochs() -> int:
    "The SSL epochs `gravityaudit embed` trains for by default: what a user gets is what is measured."
    import inspect
    from gravityaudit.embed import embed
    return inspect.signature(embed).parameters["ssl_epochs"].default


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000); p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--ssl-epochs", type=int, default=default_ssl_epochs(), help="SSL epochs of the embedding (default: embed's own)"); p.add_argument("--keep", default=None); p.add_argument("--config", default=None)
    p.add_argument("--umap-seeds", type=int, nargs="+", default=None, help="audit each set once per seed (default: the config's seed)")
    args = p.parse_args(argv)
    root = Path(args.keep or tempfile.mkdtemp(prefix="audit_truth_")); root.mkdir(parents=True, exist_ok=True)
    try: return run_audits(root, args)
    finally:
        if not args.keep: shutil.rmtree(root, ignore_errors=True)   # without --keep the sets and audits go with the run


def run_audits(root: Path, args) -> int:
    "Simulate, embed and audit each seed under `root`, score every audit against the truth and print the tables."
    from gravityaudit.truth import SCENARIO_MODES, scenario_spread, verdict_agreement
    rows, agreements, verdict_rows = [], [], []
    for seed in args.seeds:
        d, prepare_times = prepare_seed(root, args.n, seed, args.ssl_epochs)
        n = len(pd.read_csv(d / "metadata.csv", usecols=["gravityspy_id"]))
        results = []
        for i, umap_seed in enumerate(args.umap_seeds or [None]):
            score, base, seconds, result = audit_seed(d, args.config, umap_seed)
            results.append(result)
            modes = result.clusters.failure_mode.value_counts()
            verdict_rows.append(dict(seed=f"{seed}/umap{umap_seed}", n=n, clusters=len(result.clusters), **{m: int(modes.get(m, 0)) for m in
                                     ("over_split", "physical_split", "over_compressed", "drift", "new_class", "clean")}))
            times = {**(prepare_times if i == 0 else {}), "audit": seconds}     # simulate and embed once per set
            run = f"{seed}" if umap_seed is None else f"{seed}/umap{umap_seed}"
            print(f"\n== seed {run}: {n} glitches; times " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
            print(json.dumps(score, indent=1, default=str))
            for target in SCENARIO_MODES:                       # a missed cluster-level target: where its glitches went
                if target in score and not score[target]["recovered"]:
                    print(f"{target} not recovered; its glitches by cluster:")
                    print(scenario_spread(result, d / "metadata.csv", target).round(2).to_string(index=False))
            ours, theirs = verdict(score), verdict(base)
            for k in ours: rows.append(dict(seed=run, target=k, audit=ours[k], original_flags=theirs.get(k)))
        for other, umap_seed in zip(results[1:], (args.umap_seeds or [])[1:]):
            agreements.append(dict(seed=seed, n=n, umap_seeds=f"{args.umap_seeds[0]} vs {umap_seed}", **verdict_agreement(results[0], other)))
    table = pd.DataFrame(rows)
    print("\nrecovered per target (audit vs the original study's entropy/purity flags on the same clusters):")
    print(table.pivot_table(index="target", columns="seed", values=["audit", "original_flags"], aggfunc="first").to_string())
    counts = table.assign(original_flags=table.original_flags.astype(bool)).groupby("target", sort=False)[["audit", "original_flags"]].sum()
    print(f"\nruns with the target met (of {table.seed.nunique()}):")
    print(counts.to_string())
    print("\nverdicts per audit (clusters with each verdict):")
    print(pd.DataFrame(verdict_rows).to_string(index=False))
    if agreements:
        agree = pd.DataFrame(agreements)
        print("\nverdict agreement across UMAP seeds (share of glitches whose cluster gets the same verdict; flagged: among those either audit flags):")
        print(agree.round(3).to_string(index=False))
        print(f"mean agreement {agree.agreement.mean():.3f}, among flagged glitches {agree.flagged_agreement.mean():.3f}")
    a, b = table.audit.mean(), table.original_flags.astype(float).mean()
    print(f"\ntargets met: audit {a:.0%}, original flags {b:.0%}; ratio {a / b if b else float('inf'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
