"""Tests of gravityaudit.build and the trigger paths of classify: a real Dask LocalCluster (2 workers, 127.0.0.1),
strain served over real HTTP by the local GWOSC server and read from local GWOSC-format files, glitches injected at
known GPS times."""
import contextlib, io, os, subprocess, sys
from pathlib import Path
import h5py
import numpy as np
import pandas as pd
import pytest
from gravityaudit import build as B
from gravityaudit.cli import main
from gravityaudit.layout import iter_glitch_paths

GPS = 1238166018                       # start of the strain files (O3a)
SECONDS = 96
GLITCHES = [("H1", GPS + 30.0, "Whistle", 80.0), ("L1", GPS + 50.0, "Blip", 40.0)]     # detector, GPS, family, SNR
TRIGGERS = pd.DataFrame([                                          # table order is not time order on purpose
    ("L1", GPS + 50.0, "Blip"),                                    # the injected L1 glitch
    ("H1", GPS + 70.25, None),                                     # quiet H1 noise
    ("H1", GPS + 30.0, "Whistle"),                                 # the injected H1 glitch
    ("H1", GPS + 2.0, None),                                       # segment would start before the data: fails
    ("L1", GPS + 20.5, None),
    ("H1", GPS + 33.0, None),                                      # shares the fetch of the whistle
    ("H1", GPS + 500.0, None),                                     # no data at all: fails
    ("L1", GPS + 80.0, None),
], columns=["ifo", "gps", "label"])


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    "A local GWOSC-format archive of H1 and L1 strain with a whistle and a blip injected, and the trigger table as a CSV."
    from gravityaudit.local_archive import write_archive
    d = tmp_path_factory.mktemp("archive")
    for k, ifo in enumerate(("H1", "L1")):
        write_archive(d / "strain", ifo, GPS, SECONDS, glitches=[(t, family, snr) for i, t, family, snr in GLITCHES if i == ifo], seed=k)
    TRIGGERS.to_csv(d / "triggers.csv", index=False)
    return d


@pytest.fixture(scope="module")
def server(archive):
    "The local GWOSC server (127.0.0.1) serving the archive."
    from gravityaudit.local_archive import LocalGwoscServer
    with LocalGwoscServer(archive / "strain") as s: yield s


def run(*argv):
    "Run `gravityaudit ARGV`; (exit code, stdout, stderr)."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def view_bytes(path):
    "{label/sample_type/id/view: the stored (compressed) bytes} of a data set."
    with h5py.File(path, "r") as f:
        return {f"{l}/{s}/{g}/{v}": f[l][s][g][v].id.read_direct_chunk((0, 0, 0))[1]
                for l, s, g in iter_glitch_paths(f) for v in f[l][s][g]}


@pytest.fixture(scope="module")
def single(archive, tmp_path_factory):
    "The reference: the table built in this process, without Dask, from the local files."
    out = tmp_path_factory.mktemp("single") / "build"
    code, _, err = run("build", "--triggers", archive / "triggers.csv", "--strain", archive / "strain", "--workers", 0,
                       "--chunk-size", 2, "--out", out, "--no-progress")
    assert code == 0, err
    return out


def test_local_cluster_build_from_gwosc_matches_single_process(archive, server, single, tmp_path):
    "2 Dask workers on 127.0.0.1 fetching over HTTP: every trigger once, in the table's order, the same bytes as in one process."
    out = tmp_path / "dask"
    code, stdout, err = run("build", "--triggers", archive / "triggers.csv", "--strain", f"gwosc:{server.host}", "--cache", tmp_path / "cache",
                            "--workers", 2, "--chunk-size", 2, "--out", out, "--no-progress")
    assert code == 0, err
    meta, failed = pd.read_csv(out / "metadata.csv"), pd.read_csv(out / "failed.csv")
    table = pd.read_csv(single / "metadata.csv")
    ids = list(meta.gravityspy_id) + list(failed.gravityspy_id)
    assert len(ids) == len(set(ids)) == len(TRIGGERS)                                  # each trigger exactly once
    assert list(meta.event_time) == [t for t in TRIGGERS.gps if t in set(meta.event_time)]   # the table's order
    assert list(meta.gravityspy_id) == list(table.gravityspy_id)
    with h5py.File(out / "dataset.h5", "r") as f:
        assert sorted(g for _, _, g in iter_glitch_paths(f)) == sorted(meta.gravityspy_id)
        assert (f.attrs["sample_rate"], f.attrs["segment_duration"]) == (4096.0, 8.0)
    assert view_bytes(out / "dataset.h5") == view_bytes(single / "dataset.h5")
    assert sorted(p.name for p in out.iterdir()) == sorted(B.OUTPUT_FILES)             # no work folder left
    assert "triggers/s" in stdout


def test_scans_show_the_injected_glitches(single):
    "The injected glitches are the loudest scans (a whistle spreads its SNR over many tiles), at their time and in their band."
    meta = pd.read_csv(single / "metadata.csv")
    loud = meta.set_index("event_time")
    quiet = loud.scan_snr[[GPS + 70.25, GPS + 20.5, GPS + 80.0]]
    assert loud.scan_snr[GPS + 30.0] > 1.5 * quiet.max() and loud.scan_snr[GPS + 50.0] > 3 * quiet.max()
    assert loud.scan_peak_frequency[GPS + 30.0] > 3 * loud.scan_peak_frequency[GPS + 50.0]   # a whistle is higher than a blip
    with h5py.File(single / "dataset.h5", "r") as f:
        blip = f[f"Blip/test/{loud.gravityspy_id[GPS + 50.0]}/0.5.png"][0]
    column = int(np.argmax(blip.max(axis=0)))
    assert abs(column - 85) <= 8, column                                                # 170 columns over 0.5 s: the centre
    assert list(meta.label[meta.event_time.isin([GPS + 30.0, GPS + 50.0])]) == ["Blip", "Whistle"]   # their own labels kept


def test_failed_triggers_have_their_reasons(single):
    "A trigger too close to the start of the data and one without data go to failed.csv with a reason; the rest build."
    failed = pd.read_csv(single / "failed.csv")
    assert sorted(failed.event_time) == [GPS + 2.0, GPS + 500.0]
    assert failed.reason.str.len().min() > 3
    assert len(pd.read_csv(single / "metadata.csv")) == len(TRIGGERS) - 2


def test_interrupted_build_resumes_on_a_running_scheduler(archive, single, tmp_path, monkeypatch):
    "A build stopped after 2 chunks keeps them; the rerun, on a Dask scheduler already running, scans only the rest: the same data set."
    from distributed import LocalCluster
    out, saved = tmp_path / "resumed", []
    real_save = B.save_chunk
    def save_then_stop(path, result):
        real_save(path, result); saved.append(path)
        if len(saved) == 2: raise KeyboardInterrupt
    monkeypatch.setattr(B, "save_chunk", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        B.build_dataset(archive / "triggers.csv", archive / "strain", out, workers=0, chunk_size=2, progress=False)
    monkeypatch.setattr(B, "save_chunk", real_save)
    assert not (out / "dataset.h5").exists() and len(list((out / B.WORK_FOLDER).glob("chunk-*.h5"))) == 2
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        summary = B.build_dataset(archive / "triggers.csv", archive / "strain", out, scheduler=cluster.scheduler_address,
                                  chunk_size=2, progress=False)
    assert (summary["resumed_chunks"], summary["chunks"]) == (2, 4)
    assert view_bytes(out / "dataset.h5") == view_bytes(single / "dataset.h5")
    assert pd.read_csv(out / "metadata.csv").equals(pd.read_csv(single / "metadata.csv"))
    code, _, err = run("build", "--triggers", archive / "triggers.csv", "--strain", archive / "strain", "--workers", 0, "--out", out)
    assert code == 2 and "--overwrite" in err


def test_info_and_classify_read_the_build(archive, single, tmp_path):
    "`gravityaudit info` reads the built set; `classify --triggers` and `--ifo/--gps` classify the same triggers from strain."
    import torch
    from gravityaudit.classifier import GlitchClassifier
    code, stdout, err = run("info", single / "dataset.h5")
    assert code == 0 and "glitches: 6" in stdout and "segment_duration: 8.0" in stdout, err
    torch.manual_seed(0)
    clf = GlitchClassifier(architecture="small_cnn_attention", class_names=["Blip", "Whistle"], input_size=[32, 32])
    ckpt = {"state_dict": clf.state_dict()}
    clf.on_save_checkpoint(ckpt)
    torch.save(ckpt, tmp_path / "tiny.ckpt")
    code, _, err = run("classify", "--checkpoint", tmp_path / "tiny.ckpt", "--triggers", archive / "triggers.csv",
                       "--strain", archive / "strain", "--out", tmp_path / "classes.csv")
    assert code == 0, err
    classes = pd.read_csv(tmp_path / "classes.csv")
    assert list(classes.event_time) == list(TRIGGERS.gps)
    assert classes.reason.notna().sum() == 2 and set(classes.label.dropna()) <= {"Blip", "Whistle"}
    assert classes.label.notna().sum() == len(TRIGGERS) - 2
    code, stdout, err = run("classify", "--checkpoint", tmp_path / "tiny.ckpt", "--ifo", "L1", "--gps", GPS + 50.0,
                            "--strain", archive / "strain", "--out", tmp_path / "one.csv")
    assert code == 0, err
    one = pd.read_csv(tmp_path / "one.csv")
    row = classes[classes.event_time == GPS + 50.0].iloc[0]
    assert (one.label[0], round(one.confidence[0], 5)) == (row.label, round(row.confidence, 5))


def test_bad_inputs_are_one_line(archive, tmp_path):
    "An unknown label names the trigger; a bad cluster config names its key; nothing is written."
    bad = TRIGGERS.assign(label=["Blipp"] + [None] * (len(TRIGGERS) - 1))
    bad.to_csv(tmp_path / "bad.csv", index=False)
    code, _, err = run("build", "--triggers", tmp_path / "bad.csv", "--strain", archive / "strain", "--workers", 0, "--out", tmp_path / "o")
    assert code == 2 and "Blipp" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "dataset.h5").exists()
    (tmp_path / "c.yaml").write_text("kind: htcondor\nnodes: 3\n")
    code, _, err = run("build", "--triggers", archive / "triggers.csv", "--strain", archive / "strain", "--cluster", tmp_path / "c.yaml",
                       "--out", tmp_path / "o2")
    assert code == 2 and "nodes" in err


@pytest.mark.parametrize("name", ["htcondor", "slurm"])
def test_shipped_cluster_configs_make_job_scripts(name, tmp_path):
    "configs/cluster/*.yaml build a dask-jobqueue cluster whose job script starts single-threaded workers (no job submitted)."
    import yaml
    config = yaml.safe_load((Path(__file__).parents[1] / f"configs/cluster/{name}.yaml").read_text())
    config.update(jobs=0)
    config["cluster"].update(scheduler_options={"host": "127.0.0.1", "dashboard_address": None}, log_directory=str(tmp_path / "logs"))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    cluster = B.cluster_from_config(tmp_path / "c.yaml")
    try: script = cluster.job_script()
    finally: cluster.close()
    assert "--nthreads 1" in script and f"--nworkers {config['cluster']['processes']}" in script


def test_build_help_loads_no_pytorch(tmp_path):
    "`gravityaudit build --help` answers without importing PyTorch or Dask."
    code = ("import sys; from gravityaudit.cli import main\n"
            "try: rc = main(['build', '--help'])\nexcept SystemExit as e: rc = e.code\n"
            "print(sorted(m for m in ('torch', 'distributed') if m in sys.modules), rc, file=sys.stderr)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.stderr.strip().splitlines()[-1] == "[] 0", r.stderr[-2000:]
    assert "--triggers" in r.stdout and "--cluster" in r.stdout


def test_a_second_build_into_the_same_folder_is_refused(archive, tmp_path):
    "While a build holds --out, another build into it stops at once with one line and leaves the folder as it was."
    from gravityaudit.build import build_lock
    out = tmp_path / "busy"
    with build_lock(out):
        code, _, err = run("build", "--triggers", archive / "triggers.csv", "--strain", archive / "strain", "--workers", 0,
                           "--out", out, "--no-progress")
        assert code == 2 and "another build is writing" in err and len(err.strip().splitlines()) == 1
        assert list(out.iterdir()) == []
    code, _, err = run("build", "--triggers", archive / "triggers.csv", "--strain", archive / "strain", "--workers", 0,
                       "--chunk-size", 4, "--out", out, "--no-progress")
    assert code == 0, err
