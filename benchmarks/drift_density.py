"""How densely the planted drift manifold fills its own neighbourhoods, beside whether the audit found it.

The audit's map is built on each glitch's `n_neighbors` nearest neighbours in the map vectors (the embedding beside the
physical columns). For the planted drift of each prepared set this prints the share of those neighbours that are drift
glitches too, for its low, middle and high third (drift_coord), the families its middle third's neighbours belong to,
and, for every audit already written in the set's folder (audit_umapS/), the drift's share in its best drift cluster
(recovered at >= 0.5, as in audit_truth.py).

Usage: python benchmarks/drift_density.py DIR [DIR ...]
where each DIR is a prepared set (embeddings.h5 and metadata.csv), e.g. DIR/seedN kept by `audit_truth.py --keep DIR`.
"""
from __future__ import annotations
import argparse
from pathlib import Path
import numpy as np
import pandas as pd


def drift_neighbour_share(d: Path, cfg, k: int) -> dict:
    "Share of each drift glitch's `k` nearest map-vector neighbours (the map vectors of the audit config `cfg`) that are drift glitches, by third, and its middle's neighbours."
    from gravityaudit.embed import read_embeddings
    from gravityaudit.evidence import map_vectors
    from gravityaudit.clustering import neighbour_graph
    ids, vectors, _ = read_embeddings(d / "embeddings.h5")
    meta = pd.read_csv(d / "metadata.csv", dtype={"gravityspy_id": str}).set_index("gravityspy_id").loc[ids].reset_index()
    vectors, _ = map_vectors(np.asarray(vectors, np.float32), meta, cfg.physics_weight, cfg.physics_columns)
    idx = neighbour_graph(vectors, k + 1, cfg.metric, cfg.seed)[0][:, 1:]
    drift, coord = (meta.scenario == "drift").to_numpy(), meta.drift_coord.to_numpy(dtype=float)
    share = drift[idx].mean(1)
    thirds = {"low": drift & (coord < 1 / 3), "middle": drift & (coord >= 1 / 3) & (coord < 2 / 3), "high": drift & (coord >= 2 / 3)}
    families = pd.Series(meta.true_family.to_numpy()[idx[thirds["middle"]]].ravel()).value_counts(normalize=True)
    return dict(n=len(meta), drift=int(drift.sum()), all=share[drift].mean(), **{t: share[m].mean() for t, m in thirds.items()},
                middle_neighbours=", ".join(f"{f} {v:.2f}" for f, v in families.head(3).items()))


def audits_found(d: Path) -> str:
    "The drift's best share in each audit written under `d` (audit_umapS), with + where it was recovered."
    from gravityaudit.truth import score_audit_folder
    scores = []
    for out in sorted(d.glob("audit_umap*")):
        drift = score_audit_folder(out, d / "metadata.csv").get("drift")
        if drift: scores.append(f"{out.name[6:]} {drift['best_share']:.2f}{'+' if drift['recovered'] else ''}")
    return "; ".join(scores) or "no audit"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", nargs="+", type=Path, help="prepared set folders (embeddings.h5, metadata.csv)")
    p.add_argument("--k", type=int, default=None, help="neighbours per glitch (default: the audit config's n_neighbors)")
    a = p.parse_args(argv)
    from gravityaudit.evidence import AuditConfig
    cfg = AuditConfig.load(None)
    k = a.k or cfg.n_neighbors
    rows = []
    for d in a.sets:
        r = drift_neighbour_share(d, cfg, k)
        rows.append(dict(set=f"{d.parent.name}/{d.name}", **{c: r[c] for c in ("n", "drift", "all", "low", "middle", "high")},
                         audits=audits_found(d), middle_neighbours=r["middle_neighbours"]))
    pd.set_option("display.width", 250); pd.set_option("display.max_colwidth", 80)
    print(f"share of each drift glitch's {k} nearest map-vector neighbours that are drift glitches (by third of drift_coord),")
    print("and the drift's best share in one drift cluster per audit (+ = recovered, >= 0.5):")
    print(pd.DataFrame(rows).round(2).to_string(index=False))


if __name__ == "__main__":
    main()
