"Tests of the taxonomy audit (gravityaudit.audit and its stages, gravityaudit.figures): real UMAP, HDBSCAN and cleanlab on small data."
import dataclasses, re, shutil
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
import yaml

from gravityaudit import audit as A
from gravityaudit.evidence import AuditConfig, FAILURE_MODES, decide_failure_mode
from gravityaudit.files import read_embeddings, align
from gravityaudit.outputs import read_manifest
from gravityaudit.clustering import unit_rows
from gravityaudit.testing import write_synthetic_set, synthetic_taxonomy
from gravityaudit.truth import score_against_truth, score_audit_folder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    "One audit of a small synthetic taxonomy (toy images) with every failure planted, run through the files and the CLI."
    d = tmp_path_factory.mktemp("audit")
    paths = write_synthetic_set(d, n_per_family=60, seed=0)
    meta = pd.read_csv(paths["metadata"], dtype={"gravityspy_id": str})
    vectors = read_embeddings(paths["embeddings"])[1]
    rc = A.audit_command(["--data", str(paths["data"]), "--embeddings", str(paths["embeddings"]), "--out", str(d / "out"),
                          "--config", str(_config(d))])
    assert rc == 0
    return d, vectors, meta


def _config(d):
    path = d / "audit.yaml"
    # the toy taxonomy's clusters are clean, so whole drift / over-compressed clusters can be left out of the label issues
    # (the default leaves out only over_split: on the coarse clusters of simulated sets that exclusion removed most true errors)
    # the default 30-neighbour map; with 15 neighbours UMAP tears the toy drift curve into two fragments
    path.write_text(AuditConfig(cluster_selection_epsilon=2.0, exclude_modes_from_issues=("over_split", "drift", "over_compressed")).to_yaml())
    return path


def test_outputs_and_columns(audited):
    d, _, meta = audited
    out = d / "out"
    for name in ["assignments.csv", "clusters.csv", "label_issues.csv", "novel.csv", "report.md"]:
        assert (out / name).exists(), name
    a = pd.read_csv(out / "assignments.csv", dtype={"gravityspy_id": str})
    assert list(a.columns[:7]) == A.ASSIGNMENT_COLUMNS
    assert len(a) == len(meta) and set(a.gravityspy_id) == set(meta.gravityspy_id)
    c = pd.read_csv(out / "clusters.csv")
    for col in ["cluster", "size", "top_label", "purity", "entropy_bits", "ambiguity", "failure_mode", "spread_ratio",
                "continuum_r2", "continuum_gap", "physical_accuracy", "majority_rate", "order_gain", "segment_disagreement"]:
        assert col in c, col
    assert set(c.failure_mode) <= set(FAILURE_MODES)
    np.testing.assert_allclose(c.ambiguity, c["size"] * (1 - c.purity))
    assert (c["size"].to_numpy() == a[a.cluster >= 0].cluster.value_counts().sort_index().to_numpy()).all()
    issues = pd.read_csv(out / "label_issues.csv")
    assert list(issues.columns) == ["gravityspy_id", "given_label", "suggested_label", "label_quality", "cluster", "reason"]


def test_planted_failures_recovered(audited):
    d, _, meta = audited
    score = score_audit_folder(d / "out", meta)
    assert score["over_split"]["recovered"], score["over_split"]
    assert score["over_compress"]["recovered"], score["over_compress"]
    assert score["drift"]["recovered"], score["drift"]
    assert score["physical_split"]["recovered"], score["physical_split"]
    assert score["label_noise"]["precision"] >= 0.6 and score["label_noise"]["recall"] >= 0.5, score["label_noise"]
    assert score["novel"]["recall"] >= 0.5, score["novel"]


def test_old_flags_fire_on_both_but_verdicts_differ(audited):
    "The original study's two flags cannot tell over-splitting from over-compression; the evidence can."
    d, _, meta = audited
    c = pd.read_csv(d / "out/clusters.csv")
    modes = set(c.failure_mode)
    assert {"over_split", "over_compressed"} <= modes


def test_figures_written(audited):
    d, *_ = audited
    figs = {p.name for p in (d / "out/figures").glob("*.png")}
    assert {"map_by_cluster.png", "map_by_label.png", "cluster_table.png", "entropy_comparison.png"} <= figs
    c = pd.read_csv(d / "out/clusters.csv")
    k = c[c.failure_mode != "clean"].sort_values("ambiguity", ascending=False).cluster.iloc[0]
    assert {f"cluster_{k}_contact_sheet.png", f"cluster_{k}_strip.png", f"cluster_{k}_atlas.png"} <= figs


def test_report_numbers_come_from_the_tables(audited):
    d, *_ = audited
    text = (d / "out/report.md").read_text()
    issues = pd.read_csv(d / "out/label_issues.csv")
    c = pd.read_csv(d / "out/clusters.csv")
    assert f"{len(issues)} glitches" in text
    a = pd.read_csv(d / "out/assignments.csv")
    joined = int(c.merged_from.astype(str).str.contains(";").sum())
    parts = c[c.split_from.notna()]
    assert (f"{len(c)} clusters ({a.hdbscan_cluster.max() + 1} from HDBSCAN, {joined} of them joined from fragments with one label "
            f"mix, {parts.split_from.nunique()} cut into {len(parts)} parts judged on their own") in text
    top = c.sort_values("ambiguity", ascending=False, kind="stable").head(20)
    assert text.count("(not judged: too small)") == int((top["size"] < AuditConfig().min_evidence_size).sum())
    assert c.judged.tolist() == (c["size"] >= AuditConfig().min_evidence_size).tolist()
    for r in c.itertuples():      # every audit cluster (or every physical split, over its parts) is exactly the union of the HDBSCAN clusters it names
        members = a[a.cluster.isin(c.cluster[c.split_from == r.split_from]) if pd.notna(r.split_from) else a.cluster == r.cluster]
        assert sorted(members.hdbscan_cluster.unique()) == sorted(int(k) for k in str(r.merged_from).split(";"))
    for r in parts[parts.failure_mode != "clean"].itertuples():      # a flagged part names the cluster it was cut from
        assert f"cut from cluster {int(r.split_from)}" in text
    for r in c.itertuples():                                           # every verdict comes with its one-sentence reason
        assert isinstance(r.reason, str) and len(r.reason) > 20
    for r in c[c.failure_mode != "clean"].itertuples():
        assert re.search(rf"cluster {r.cluster}: {r.failure_mode}\*\* \(n = {r.size},", text)


def test_physical_split_with_clean_sides_stays_one_verdict(audited):
    "The control mapped from the embedding alone is one cluster; cut into its clean sides, it stays one physical_split cluster."
    d, _, meta = audited
    ids, vectors, _ = read_embeddings(d / "embeddings.h5")
    vectors, meta = align(ids, vectors, meta)
    cut = A.TaxonomyAudit(d / "audit.yaml", physics_weight=0.0).fit(vectors, meta.label.to_numpy(), meta, ids=ids, label_issues=False)
    whole = A.TaxonomyAudit(d / "audit.yaml", physics_weight=0.0, cut_physical_splits=False, search_inside=False).fit(
        vectors, meta.label.to_numpy(), meta, ids=ids, label_issues=False)
    assert whole.config_ == dataclasses.replace(AuditConfig.load(d / "audit.yaml"), physics_weight=0.0, cut_physical_splits=False, search_inside=False)
    for audit in (cut, whole):
        control = audit.assignments_[meta.scenario.to_numpy() == "physical_split"]
        assert control.failure_mode.eq("physical_split").all() and control.cluster.nunique() == 1
        assert (audit.clusters_.failure_mode == "physical_split").sum() == 1 and audit.clusters_.split_from.isna().all()


def test_seeded_and_reproducible():
    vectors, meta = synthetic_taxonomy(n_per_family=25, seed=5)
    fits = [A.TaxonomyAudit(n_neighbors=10, min_cluster_size=10, seed=7).fit(vectors, meta.label, meta, label_issues=False) for _ in range(2)]
    np.testing.assert_array_equal(fits[0].cluster_ids_, fits[1].cluster_ids_)
    np.testing.assert_allclose(fits[0].map_2d_, fits[1].map_2d_)
    pd.testing.assert_frame_equal(fits[0].clusters_, fits[1].clusters_)


def test_similar_command(audited, capsys):
    d, vectors, meta = audited
    gid = meta.gravityspy_id[0]
    assert A.similar_command(["--id", gid, "--k", "5", "--embeddings", str(d / "embeddings.h5"), "--metadata", str(d / "metadata.csv")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and "similarity" in lines[0] and gid not in "".join(lines[1:])
    table = A.similar(gid, d / "embeddings.h5", k=3, metadata=d / "metadata.csv")
    u = unit_rows(vectors)
    best = np.argsort(-(u @ u[0]))[1]
    assert table.gravityspy_id[0] == meta.gravityspy_id[best]
    with pytest.raises(KeyError, match="no_such_id"):
        A.similar("no_such_id", d / "embeddings.h5")


def test_bad_inputs(tmp_path, audited):
    d, *_ = audited
    with pytest.raises(FileNotFoundError, match="no metadata CSV beside"):
        A.run_audit(tmp_path / "set.h5", d / "embeddings.h5", tmp_path / "out")
    pd.DataFrame(dict(gravityspy_id=["x1"], label=["Blip"])).to_csv(tmp_path / "metadata.csv", index=False)
    with pytest.raises(KeyError, match="in the embeddings but not in the metadata"):
        A.run_audit(tmp_path / "set.h5", d / "embeddings.h5", tmp_path / "out")
    with pytest.raises(ValueError, match="n_neighbours"):
        AuditConfig.load({"n_neighbours": 3})
    pd.DataFrame(dict(gravityspy_id=["x1", "x1"], label=["Blip", "Chirp"])).to_csv(tmp_path / "metadata.csv", index=False)
    with pytest.raises(ValueError, match="duplicate gravityspy_id"):      # duplicated ids are an error, not silently dropped
        A.run_audit(tmp_path / "set.h5", d / "embeddings.h5", tmp_path / "out")
    with pytest.raises(ValueError, match="n_neighbors: must be an integer >= 2, got 'thirty'"):
        A.run_audit(d / "set.h5", d / "embeddings.h5", tmp_path / "out", config={"n_neighbors": "thirty"})


def test_decision_rules_need_the_right_evidence():
    base = dict(size=300, purity=0.3, physical_gain=0.02, physical_accuracy=0.32, continuum_r2=0.3, continuum_gap=0.4,
                extent_ratio=0.1, order_association=0.05, order_pvalue=0.5, n_segment_labels=3)
    assert decide_failure_mode(base) == "over_split"
    gap = dict(separation_accuracy=0.99, separation_d=8.0)
    assert decide_failure_mode({**base, **gap, "physical_gain": 0.5, "physical_accuracy": 0.95}) == "physical_split"
    assert decide_failure_mode({**base, "separation_accuracy": 0.8, "separation_d": 1.1, "physical_gain": 0.5,
                                "physical_accuracy": 0.95}) == "drift"     # explained by physics, but the groups overlap: no split
    assert decide_failure_mode({**base, "novelty_share": 0.8}) == "new_class"
    drift = {**base, "purity": 0.55, "continuum_r2": 0.85, "continuum_gap": 0.05, "order_association": 0.4, "order_pvalue": 1e-4,
             "physical_gain": 0.2, "physical_accuracy": 0.75}
    assert decide_failure_mode(drift) == "drift"
    wide = {**base, "purity": 0.8, "continuum_r2": 0.85, "continuum_gap": 0.05, "extent_ratio": 0.8, "n_segment_labels": 1}
    assert decide_failure_mode(wide) == "over_compressed"
    assert decide_failure_mode({**wide, "extent_ratio": 0.1}) == "clean"   # its ends are no further apart than within a class


def test_wandb_offline_run(audited, monkeypatch):
    "--wandb logs the cluster table, label issues (with images) and the map to an offline run inside OUT."
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline"); monkeypatch.setenv("WANDB_SILENT", "true")
    d, vectors, meta = audited
    out = d / "out"
    result = A.AuditResult(out, pd.read_csv(out / "assignments.csv", dtype={"gravityspy_id": str}), pd.read_csv(out / "clusters.csv"),
                           pd.read_csv(out / "label_issues.csv", dtype={"gravityspy_id": str}), pd.read_csv(out / "novel.csv"), None)
    A.log_to_wandb(result, d / "set.h5", meta, max_images=5)
    runs = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1 and runs[0].stat().st_size > 0
    media = list((out / "wandb").glob("offline-run-*/files/media/**/*.png"))
    assert media, "no images logged"


def test_truth_in_memory_equals_truth_from_files(audited):
    "run_audit scores the tables it holds; scoring the files it wrote gives the same numbers."
    d, _, meta = audited
    tables = [pd.read_csv(d / "out" / f"{name}.csv", dtype={"gravityspy_id": str}) for name in ("assignments", "clusters", "label_issues", "novel")]
    result = A.AuditResult(d / "out", *tables, audit=None)
    assert score_against_truth(result, meta) == score_audit_folder(d / "out", d / "metadata.csv")


def test_estimator_parameters():
    "TaxonomyAudit stores its arguments, round-trips them through get_params / set_params / clone, and lets keywords override the config."
    from sklearn.base import clone
    audit = A.TaxonomyAudit(AuditConfig(n_neighbors=12, seed=1), seed=3, min_samples=None)
    assert audit.get_params() == {"config": AuditConfig(n_neighbors=12, seed=1), "seed": 3, "min_samples": None}
    twin = clone(audit)
    assert twin is not audit and twin.get_params() == audit.get_params()
    assert audit.effective_config() == AuditConfig(n_neighbors=12, seed=3, min_samples=None)
    assert A.TaxonomyAudit(**audit.set_params(seed=4).get_params()).effective_config().seed == 4
    with pytest.raises(TypeError, match="n_neighbours"):
        A.TaxonomyAudit(n_neighbours=3)
    with pytest.raises(ValueError, match="n_neighbours"):
        audit.set_params(n_neighbours=3)
    with pytest.raises(ValueError, match="min_samples: must be an integer >= 1, got -4"):
        A.TaxonomyAudit(min_samples=-4).fit(np.eye(12), ["A"] * 12)


def test_default_yaml_is_the_default_config():
    "configs/audit/default.yaml lists every AuditConfig field, with the same values."
    path = ROOT / "configs/audit/default.yaml"
    assert AuditConfig.from_yaml(path) == AuditConfig()
    assert list(yaml.safe_load(path.read_text())) == [f.name for f in dataclasses.fields(AuditConfig)]


def test_rerun_into_a_used_folder_is_refused_or_replaced_whole(tmp_path, audited):
    d, *_ = audited
    out = tmp_path / "out"
    shutil.copytree(d / "out", out)                                            # an earlier audit, with figures
    assert (out / "figures").is_dir()
    args = ["--data", str(d / "set.h5"), "--embeddings", str(d / "embeddings.h5"), "--out", str(out), "--config", str(_config(d))]
    with pytest.raises(FileExistsError, match="--overwrite"): A.audit_command(args + ["--no-figures"])
    assert (out / "figures").is_dir()                                          # refused: the old audit untouched
    assert A.audit_command(args + ["--no-figures", "--overwrite"]) == 0
    assert not (out / "figures").exists()                                      # replaced whole: no stale figures beside new tables
    assert read_manifest(out, "audit")["n_glitches"] == len(pd.read_csv(out / "assignments.csv"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]               # no hidden temporaries left


def test_bad_labels_are_refused_before_any_output(tmp_path, audited):
    d, *_ = audited
    meta = pd.read_csv(d / "metadata.csv", dtype={"gravityspy_id": str})
    for bad, message in ((meta.label.where(meta.index != 3, "Blip "), "surrounding spaces"), (meta.label.where(meta.index != 3, None), "missing label")):
        meta.assign(label=bad).to_csv(tmp_path / "metadata.csv", index=False)
        with pytest.raises(ValueError, match=message):
            A.run_audit(d / "set.h5", d / "embeddings.h5", tmp_path / "out", metadata=tmp_path / "metadata.csv")
        assert not (tmp_path / "out").exists()
