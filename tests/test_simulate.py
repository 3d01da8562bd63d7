"""Tests of gravityaudit.simulate: configuration, annotator rates, determinism, files, realism of every class."""
import dataclasses
import os, signal, subprocess, sys, time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gravityaudit import simulate as S
from gravityaudit.qscan import excess_fraction
from gravityaudit.taxonomy import CLASSES_V1, O3_ADDITIONS, VIEW_NAMES

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- configuration
@pytest.mark.parametrize("bad, field", [
    ({"classes": ["Blip", "Blipp"]}, "classes: unknown glitch class 'Blipp'"),
    ({"class_counts": {"Whistle": -1}}, "class_counts.Whistle"),
    ({"label_noise": {"rate": -0.1}}, "label_noise.rate"),
    ({"over_compress": {"label_probability": 1.2}}, "over_compress.label_probability"),
    ({"over_split": {"labels": ["Power_Line", "Violin_Mode"]}}, "over_split.labels: needs K >= 3"),
    ({"drift": {"disagreement": [0.1, 0.3]}}, "drift.disagreement"),
    ({"n_glitches": -5}, "n_glitches"),
    ({"physical_split": {"frequencies": [60.0, 70.0]}}, "physical_split.frequencies"),
    ({"segment_duration": 4.0}, "segment_duration"),
])
def test_bad_config_names_the_field(bad, field):
    with pytest.raises(ValueError, match=None) as e: S.SimulationConfig.from_dict(bad)
    assert field in str(e.value)


def test_bad_config_fails_before_any_work(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("over_split:\n  labels: [Blip, Tomte]\n")
    t = time.time()
    rc = S.simulate_command(["--out", str(tmp_path / "out"), "--config", str(cfg), "--quiet"])
    assert rc == 2 and time.time() - t < 5
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(FileNotFoundError, match="nope.yaml"): S.simulate(tmp_path / "o", config=str(tmp_path / "nope.yaml"))


def test_default_yaml_documents_every_field():
    path = ROOT / "configs" / "simulate" / "default.yaml"
    cfg = S.SimulationConfig.from_yaml(path)
    default = S.SimulationConfig()
    assert all(cfg.snr_range(k) == default.snr_range(k) for k in S.DEFAULT_SNR)
    shipped, plain = cfg.to_dict(), default.to_dict()
    assert {k: v for k, v in shipped.items() if k != "snr"} == {k: v for k, v in plain.items() if k != "snr"}
    text = path.read_text()
    for f in dataclasses.fields(S.SimulationConfig):
        assert f"\n{f.name}:" in text, f.name
        section = getattr(default, f.name)
        if dataclasses.is_dataclass(section):
            for ff in dataclasses.fields(section): assert f"  {ff.name}:" in text, f"{f.name}.{ff.name}"


# ---------------------------------------------------------------- the annotator (plan only: no scans)
@pytest.fixture(scope="module")
def big_plan():
    return S.plan_dataset(S.SimulationConfig(n_glitches=20000, seed=11))


def _within(observed, n, p, sigmas=4.0):
    return abs(observed - n * p) <= sigmas * np.sqrt(n * p * (1 - p)) + 1


def test_scenario_and_noise_rates_match_config(big_plan):
    cfg = S.SimulationConfig(n_glitches=20000, seed=11)
    counts = big_plan.scenario.value_counts()
    for name in ("over_split", "physical_split", "over_compress", "drift", "novel"):
        assert counts[name] == round(getattr(cfg, name).fraction * 20000)
    ordinary = big_plan[big_plan.scenario == "none"]
    assert _within(ordinary.label_is_noise.sum(), len(ordinary), cfg.label_noise.rate)
    assert (ordinary.label[~ordinary.label_is_noise] == ordinary.true_family[~ordinary.label_is_noise]).all()
    assert (ordinary.label[ordinary.label_is_noise] != ordinary.true_family[ordinary.label_is_noise]).all()
    assert not big_plan[big_plan.scenario != "none"].label_is_noise.any()
    # over-compression: the main label with probability 0.8 in every fifth of c
    oc = big_plan[big_plan.scenario == "over_compress"]
    for _, part in oc.groupby(pd.cut(oc.continuum_coord, 5), observed=True):
        assert _within((part.label == "Blip").sum(), len(part), 0.8) and (part.label == "Blip").mean() >= 0.7
    # drift: disagreement 10 / 30 / 50 % by third of s
    dr = big_plan[big_plan.scenario == "drift"]
    seg = np.minimum((dr.drift_coord * 3).astype(int), 2)
    for k, rate in enumerate(cfg.drift.disagreement):
        part = dr[seg == k]
        assert _within((part.label != cfg.drift.segment_labels[k]).sum(), len(part), rate)
    # coordinates exist exactly where they apply, in [0, 1]
    assert oc.continuum_coord.between(0, 1).all() and big_plan.continuum_coord.notna().sum() == len(oc)
    assert dr.drift_coord.between(0, 1).all() and big_plan.drift_coord.notna().sum() == len(dr)


def test_gravityspy_balance_and_split(big_plan):
    ordinary = big_plan[big_plan.scenario == "none"]
    share = ordinary.true_family.value_counts(normalize=True)
    assert abs(share["Blip"] - 1869 / 8583) < 0.01 and abs(share["Paired_Doves"] - 27 / 8583) < 0.002
    split = big_plan.groupby("label").sample_type.value_counts(normalize=True).unstack().fillna(0)
    big = split.loc[big_plan.label.value_counts()[lambda c: c > 200].index]
    assert (big["train"].sub(0.70).abs() < 0.02).all() and (big["test"].sub(0.15).abs() < 0.02).all()
    h1 = big_plan.groupby("true_family").ifo.apply(lambda s: (s == "H1").mean())
    assert h1["1080Lines"] > 0.8 and h1["Light_Modulation"] > 0.8 and h1["1400Ripples"] < 0.2 and h1["Helix"] < 0.2


FAST = dict(sample_rate=4096, segment_duration=8.0)   # parameter-only tests: the drawn physics does not depend on these


def test_over_split_labels_independent_of_physics():
    cfg = S.SimulationConfig(n_glitches=6000, seed=5, **FAST)
    plan = S.plan_dataset(cfg)
    rows = plan[plan.scenario == "over_split"].to_dict("records")
    made = [S.synthesize(r, cfg)[1] for r in rows]
    df = pd.DataFrame(dict(label=[r["label"] for r in rows], ifo=[r["ifo"] for r in rows],
                           f=[m["central_freq"] for m in made], d=[m["duration"] for m in made], snr=[m["snr"] for m in made]))
    assert df.label.nunique() >= 3
    for col in ("f", "d", "snr"):
        table = pd.crosstab(df.label, pd.qcut(df[col], 3))
        assert stats.chi2_contingency(table).pvalue > 1e-3, col
    assert stats.chi2_contingency(pd.crosstab(df.label, df.ifo)).pvalue > 1e-3


def test_physical_split_labels_determined_by_frequency():
    cfg = S.SimulationConfig(n_glitches=3000, seed=6, **FAST)
    plan = S.plan_dataset(cfg)
    rows = plan[plan.scenario == "physical_split"].to_dict("records")
    freqs = np.array([S.synthesize(r, cfg)[1]["central_freq"] for r in rows])
    labels = np.array([r["label"] for r in rows])
    cut = np.sqrt(np.prod(cfg.physical_split.frequencies))
    expected = np.where(freqs < cut, cfg.physical_split.labels[0], cfg.physical_split.labels[1])
    assert (labels == expected).all() and len(set(labels)) == 2


# ---------------------------------------------------------------- strain-level physics (no scans)
def test_snr_spread_is_real():
    cfg = S.SimulationConfig(seed=2, **FAST)
    snr = np.array([S.synthesize(dict(index=i, true_family="Blip", scenario="none", psd="o3_h1", continuum_coord=np.nan,
                                      drift_coord=np.nan, target_frequency=np.nan), cfg)[1]["snr"] for i in range(300)])
    assert snr.min() >= 7.5 and snr.max() <= 100
    assert np.percentile(snr, 90) / np.percentile(snr, 10) > 3 and 10 < np.median(snr) < 20


def test_continuum_grows_and_drift_moves():
    cfg = S.SimulationConfig(seed=3, **FAST)
    def info(fam, **coords):
        row = dict(index=0, true_family=fam, scenario="over_compress" if fam == "blip_continuum" else "drift", psd="aligo_design",
                   continuum_coord=coords.get("c", np.nan), drift_coord=coords.get("s", np.nan), target_frequency=np.nan)
        return S.synthesize(row, cfg)[1]
    lo, hi = info("blip_continuum", c=0.0), info("blip_continuum", c=1.0)
    assert hi["duration"] > 5 * lo["duration"] and hi["bandwidth"] > 1.5 * lo["bandwidth"]
    f = [info("drift_manifold", s=s)["central_freq"] for s in (0.0, 0.5, 1.0)]
    assert f[0] < 60 < f[1] < 400 < f[2]


# ---------------------------------------------------------------- scans: realism of every class
# One uniform data set over all 24 classes, no scenarios (labels = truth), made by `simulate` with 2 workers:
# the realism checks read the measured columns of its metadata and the images of its HDF5 file.
ALL = list(CLASSES_V1 + O3_ADDITIONS)
PER_CLASS = 10


@pytest.fixture(scope="module")
def uniform_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("uniform")
    meta = S.simulate(out, n_glitches=PER_CLASS * len(ALL), balance="uniform", seed=0, scenarios=False,
                      config={"classes": ALL}, workers=2, progress=False)
    return out, meta


def _views(out, r):
    with h5py.File(out / "dataset.h5", "r") as f:
        return np.stack([f[f"{r.label}/{r.sample_type}/{r.gravityspy_id}/{v}"][0] for v in VIEW_NAMES])


def test_every_class_measures_in_its_band(uniform_set):
    _, meta = uniform_set
    assert (meta.label == meta.true_family).all() and meta.true_family.value_counts().eq(PER_CLASS).all()
    banded = meta[meta.true_family.isin(list(S.CLASS_BANDS))].copy()
    banded["ok"] = [S.in_class_band(r["true_family"], r) for r in banded.to_dict("records")]
    rate = banded.groupby("true_family").ok.mean()
    print(banded.groupby("true_family")[["peak_frequency", "measured_duration", "measured_span", "snr"]].median().join(rate).to_string())
    assert set(rate.index) == set(ALL) - {"No_Glitch", "None_of_the_Above"}
    assert (rate >= 0.9).all(), rate[rate < 0.9]


def test_no_glitch_scans_contain_no_excess(uniform_set):
    out, meta = uniform_set
    quiet = meta[meta.true_family == "No_Glitch"]
    blips = meta[meta.true_family == "Blip"]
    assert (quiet.measured_duration == 0).mean() >= 0.9 and (blips.measured_duration > 0).all()
    assert (quiet.peak_energy < 18).mean() >= 0.9 and (quiet.snr < 7.5).all()      # nothing above the trigger threshold
    fq = [excess_fraction(_views(out, r)) for r in quiet.itertuples()]
    fb = [excess_fraction(_views(out, r)) for r in blips.itertuples()]
    assert np.mean(fq) < 1e-4 and np.mean(fb) > 10 * np.mean(fq)


def test_extremely_loud_saturates_the_plane(uniform_set):
    out, meta = uniform_set
    sat = lambda fam: [np.mean(_views(out, r)[0] >= 0.99) for r in meta[meta.true_family == fam].itertuples()]
    assert np.median(sat("Extremely_Loud")) > 10 * np.median(sat("Blip")) and np.median(sat("Extremely_Loud")) > 0.05


def test_scan_peak_frequency_tracks_injection(uniform_set):
    _, meta = uniform_set
    # (Violin_Mode is left out: as in O3, a share of them trigger on the low-frequency kick, not on the ringing)
    narrow = meta[meta.true_family.isin(["Power_Line", "Air_Compressor", "1080Lines", "Whistle", "Blip"])]
    ratio = narrow.peak_frequency / narrow.central_freq
    assert ratio.between(0.5, 2).mean() >= 0.9
    assert stats.spearmanr(meta.snr[meta.true_family == "Blip"], meta.measured_bandwidth[meta.true_family == "Blip"]).statistic > 0


# ---------------------------------------------------------------- files, determinism, CLI
@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    rc = S.simulate_command(["--out", str(out / "a"), "--n-glitches", "24", "--balance", "uniform", "--seed", "4", "--workers", "1", "--batch-size", "8", "--quiet"])
    assert rc == 0
    return out


def test_layout_metadata_and_attributes(small_set):
    meta = pd.read_csv(small_set / "a" / "metadata.csv")
    assert len(meta) == 24 and list(meta.columns[:len(S.GRAVITY_SPY_COLUMNS)]) == list(S.GRAVITY_SPY_COLUMNS)
    for col in S.TRUTH_COLUMNS: assert col in meta
    assert meta.gravityspy_id.is_unique and set(meta.sample_type) <= {"train", "validation", "test"}
    assert set(meta.scenario) <= set(S.SCENARIOS) and meta.label_is_noise.dtype == bool
    with h5py.File(small_set / "a" / "dataset.h5", "r") as f:
        assert "config" in f.attrs and f.attrs["gravityaudit_version"]
        assert S.SimulationConfig.from_yaml(f.attrs["config"]).seed == 4
        for r in meta.itertuples():
            g = f[f"{r.label}/{r.sample_type}/{r.gravityspy_id}"]
            assert sorted(g) == sorted(VIEW_NAMES)
            img = g["1.0.png"][()]
            assert img.shape == (1, 140, 170) and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1
        # image orientation: row 0 is the highest frequency; Violin_Mode-like lines sit high, low-frequency ones low
        lf = meta[meta.true_family.isin(["Low_Frequency_Lines", "Low_Frequency_Burst", "Scattered_Light"])]
        for r in lf.itertuples():
            img = f[f"{r.label}/{r.sample_type}/{r.gravityspy_id}/4.0.png"][0]
            assert img[100:].mean() > img[:40].mean()


def test_same_seed_same_files_whatever_the_workers(small_set):
    rc = S.simulate_command(["--out", str(small_set / "b"), "--n-glitches", "24", "--balance", "uniform", "--seed", "4", "--workers", "2", "--batch-size", "8", "--quiet"])
    assert rc == 0
    a, b = (pd.read_csv(small_set / k / "metadata.csv") for k in ("a", "b"))
    pd.testing.assert_frame_equal(a, b)
    with h5py.File(small_set / "a" / "dataset.h5", "r") as fa, h5py.File(small_set / "b" / "dataset.h5", "r") as fb:
        for r in a.itertuples():
            for v in VIEW_NAMES:
                key = f"{r.label}/{r.sample_type}/{r.gravityspy_id}/{v}"
                np.testing.assert_array_equal(fa[key][()], fb[key][()])


def _start_big_simulation(out):
    "A simulate of 5,000 glitches in a subprocess, returned once it has begun writing its hidden partial folder."
    p = subprocess.Popen([sys.executable, "-c", "from gravityaudit.simulate import simulate_command; simulate_command(['--out', %r, '--n-glitches', '5000', '--quiet'])" % str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         # as from a terminal: Ctrl-C raises KeyboardInterrupt (an ignored SIGINT would be inherited from this
                         # test process when an earlier test, e.g. a Lightning run, left it ignored)
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    def simulating():   # glitches are being written into the hidden partial folder
        return any(f.stat().st_size > 50_000 for d in out.parent.glob(f".{out.name}.partial-*") for f in d.glob(".*.tmp"))
    deadline = time.time() + 120
    while time.time() < deadline and not simulating(): time.sleep(0.2)
    assert simulating(), "the simulation did not start writing within 120 s"
    return p


def test_interrupted_run_leaves_no_final_files(tmp_path):
    out = tmp_path / "out"
    p = _start_big_simulation(out)
    deadline = time.time() + 60
    while p.poll() is None and time.time() < deadline:          # Ctrl-C, again if it landed where Python ignores it (a __del__)
        p.send_signal(signal.SIGINT)
        try: p.wait(3)
        except subprocess.TimeoutExpired: pass
    assert p.poll() is not None
    assert not out.exists()
    assert not list(tmp_path.glob(".out.*")), list(tmp_path.iterdir())     # Ctrl-C cleans up its temporary files too


def test_killed_run_is_cleaned_by_the_next(tmp_path):
    out = tmp_path / "out"
    p = _start_big_simulation(out)
    p.kill(); p.wait(30)                                                    # SIGKILL: no chance to clean up
    assert not out.exists() and len(list(tmp_path.glob(".out.partial-*"))) == 1
    assert S.simulate_command(["--out", str(out), "--n-glitches", "2", "--batch-size", "2", "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]           # the next run removed the leftovers
    assert sorted(p.name for p in out.iterdir()) == ["dataset.h5", "manifest.json", "metadata.csv"]
