"""The study end to end: the real-data pipeline on a small file in the exact Gravity Spy v1 layout, the report
checked against the CSV files it was built from, skipping of finished steps, and a real interruption."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from gravityaudit.report import classifier_summary

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from gravityaudit.cli import main; sys.exit(main(sys.argv[1:]))"]

@pytest.fixture(scope="module")
def real_layout_run(tmp_path_factory):
    "Run configs/pipeline/gravityspy_v1.yaml, shrunk with --set, on a 22-class real-layout file."
    from gravityaudit.examples import write_example_set
    d = tmp_path_factory.mktemp("v1")
    h5, csv = write_example_set(d / "gravityspy", n_per_class=6, seed=3)
    out = d / "run"
    argv = CLI + ["pipeline", "--config", "configs/pipeline/gravityspy_v1.yaml", "--data", str(h5), "--metadata", str(csv),
                  "--out", str(out), "--set", "fit_config=configs/train/demo.yaml", "max_epochs=1", "ssl_epochs=1", "ssl_width=8"]
    env = {**os.environ, "WANDB_MODE": "offline", "MPLBACKEND": "Agg"}
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, h5, csv, argv, env

def test_every_step_finished(real_layout_run):
    out, *_ = real_layout_run
    assert sorted(p.name for p in out.iterdir()) == ["audit", "embed", "fit", "predict", "report", "test", "timings.csv"]
    timings = pd.read_csv(out / "timings.csv")
    assert list(timings.step) == ["fit", "test", "predict", "embed", "audit", "report"] and (timings.status == "ran").all()
    for name in ["assignments.csv", "clusters.csv", "label_issues.csv", "novel.csv", "explorer.html"]:
        assert (out / "audit" / name).exists(), name

def test_report_numbers_match_the_csv_files(real_layout_run):
    out, h5, csv, *_ = real_layout_run
    nums = json.loads((out / "report/report.json").read_text())
    meta, preds = pd.read_csv(csv), pd.read_csv(out / "predict/predictions.csv")
    assert nums["data"]["glitches"] == len(meta) == len(preds) == 132
    assert nums["data"]["per_split"] == meta.sample_type.value_counts().to_dict()
    test = preds.merge(meta[["gravityspy_id", "sample_type"]], on="gravityspy_id").query("sample_type == 'test'")
    assert nums["classifier"]["n"] == len(test)
    assert nums["classifier"]["accuracy"] == pytest.approx((test.label == test.predicted).mean())
    assert nums["classifier"] == pytest.approx(classifier_summary(test))
    clusters = pd.read_csv(out / "audit/clusters.csv")
    real = clusters[clusters.cluster >= 0]
    assert nums["audit"]["clusters"] == len(real)
    assert nums["audit"]["failure_modes"] == real.failure_mode.value_counts().to_dict()
    assert nums["audit"]["label_issues"] == len(pd.read_csv(out / "audit/label_issues.csv"))
    page = (out / "report/index.html").read_text()
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert f"{nums['classifier'][key]:.3f}" in page       # the page shows the very numbers of report.json
    assert "truth" not in nums                                 # real data: no planted truth to score against

def test_second_run_skips_every_step(real_layout_run):
    out, h5, csv, argv, env = real_layout_run
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (pd.read_csv(out / "timings.csv").status == "skipped").all()

def test_interrupted_run_leaves_no_result_and_resumes(tmp_path):
    cfg = tmp_path / "slow.yaml"
    cfg.write_text(f"""out: {tmp_path / 'run'}
steps:
  - name: quick
    command: [python, -c, "import sys; open(sys.argv[1] + '/a.txt', 'w').write('a')", "{{dir}}"]
    outputs: [a.txt]
  - name: slow
    command: [python, -c, "import sys, time, pathlib; p = pathlib.Path(sys.argv[1]); (p / 'half.txt').write_text('x'); time.sleep(float(sys.argv[2])); (p / 'b.txt').write_text('b')", "{{dir}}", "{{pause}}"]
    outputs: [b.txt]
vars:
  pause: 60
""")
    proc = subprocess.Popen(CLI + ["pipeline", "--config", str(cfg)], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    half = tmp_path / "run/slow.partial/half.txt"
    deadline = time.time() + 120
    while not half.exists() and time.time() < deadline: time.sleep(0.2)
    assert half.exists(), "the slow step never started"
    os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    assert (tmp_path / "run/quick/a.txt").exists() and not (tmp_path / "run/slow").exists()   # nothing half-written in place
    done = subprocess.run(CLI + ["pipeline", "--config", str(cfg), "--set", "pause=0"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run/slow/b.txt").read_text() == "b" and not (tmp_path / "run/slow.partial").exists()
    timings = pd.read_csv(tmp_path / "run/timings.csv")
    assert dict(zip(timings.step, timings.status)) == {"quick": "skipped", "slow": "ran"}


def test_open_data_classifier_needs_no_profile_warning(tmp_path):
    """configs/pipeline/open_data_classifier.yaml (shrunk) gives a checkpoint that takes 8 s of 4096 Hz strain without a warning,
    run from a folder outside the project: the config's relative paths (configs/simulate/..., configs/train/...) are found."""
    import warnings
    from gravityaudit.classify import classify_strain, ScanProfileWarning
    out = tmp_path / "run"
    argv = CLI + ["pipeline", "--config", str(ROOT / "configs/pipeline/open_data_classifier.yaml"), "--out", str(out), "--set", "n_glitches=66"]
    env = {**os.environ, "WANDB_MODE": "offline", "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    elsewhere = tmp_path / "elsewhere"; elsewhere.mkdir()
    proc = subprocess.run(argv, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "checkpoint for 8 s of 4096 Hz strain" in proc.stdout
    real = np.load(ROOT / "tests" / "real_strain" / "o3a_glitches.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScanProfileWarning)
        table = classify_strain(out / "fit" / "best.ckpt", real["strain"], float(real["sample_rate"]))
    assert len(table) == 3 and table.confidence.between(0, 1).all()
