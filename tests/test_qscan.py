"""Tests of gravityaudit.qscan: omega scans against gwpy, shapes, orientation, bad input, the `scan` command."""
import math

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.signal import welch

from gravityaudit import qscan
from gravityaudit.qscan import SCAN_FREQUENCIES, omega_scan, reference_scan, scan_times, whiten
from gravityaudit.scan import scan_command

FS = 4096
N = 8 * FS


def coloured_noise(rng, n=N, sample_rate=FS):
    "Gaussian noise with a low-frequency wall and a rising high-frequency slope."
    f = np.fft.rfftfreq(n, 1 / sample_rate)
    shape = (1 + (30 / np.maximum(f, 1)) ** 4) ** 0.5 * (1 + (f / 500) ** 2) ** 0.5
    return np.fft.irfft((rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)) * shape, n=n)


def add_glitch(noise, glitch, snr, sample_rate=FS):
    "`noise` plus `glitch` scaled to matched-filter SNR `snr` against the noise's PSD."
    f, psd = welch(noise, fs=sample_rate, nperseg=2 * sample_rate, average="median")
    gf = np.fft.rfftfreq(glitch.size, 1 / sample_rate)
    g = np.fft.rfft(glitch) / sample_rate
    rho = np.sqrt(4 * np.sum(np.abs(g[1:]) ** 2 / np.interp(gf[1:], f, psd)) * gf[1])
    return noise + glitch * snr / rho


def times(n=N, sample_rate=FS):
    return np.arange(n) / sample_rate - n / sample_rate / 2


def sine_gaussian(f0, q, n=N, sample_rate=FS):
    t = times(n, sample_rate)
    tau = q / (math.sqrt(2) * math.pi * f0)
    return np.exp(-(t / tau) ** 2) * np.sin(2 * math.pi * f0 * t)


def chirp():
    t = times()
    return np.sin(2 * np.pi * (300 * t + 400 * t ** 2)) * np.exp(-(t / 0.25) ** 2)     # 100 -> 500 Hz


def line_burst(f0=450.0, length=1.0):
    t = times()
    envelope = np.clip(1 - np.abs(t) / (length / 2), 0, None) ** 0.5                  # ~1 s narrow line
    return envelope * np.sin(2 * np.pi * f0 * t)


GLITCHES = {
    "sg60_q6": (sine_gaussian(60, 6), 12),
    "sg250_q40": (sine_gaussian(250, 40), 12),
    "sg900_q8": (sine_gaussian(900, 8), 10),
    "sg900_q60": (sine_gaussian(900, 60), 12),
    "chirp": (chirp(), 15),
    "line_burst": (line_burst(), 15),
}


def pearson(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.fixture(scope="module")
def glitch_batch():
    rng = np.random.default_rng(2024)
    return np.stack([add_glitch(coloured_noise(rng), g, snr) for g, snr in GLITCHES.values()])


@pytest.fixture(scope="module")
def scans(glitch_batch):
    return omega_scan(glitch_batch, FS)


def test_whiten_matches_gwpy():
    from gwpy.timeseries import TimeSeries
    x = coloured_noise(np.random.default_rng(0)) * 1e-21
    data = TimeSeries(x, sample_rate=FS)
    expected = data.whiten(asd=data.asd(2, 1, method="median"), fduration=2).value
    got = whiten(x, FS)
    assert np.abs(got - expected).max() < 1e-3 * np.abs(expected).max()
    got_batch = whiten(torch.from_numpy(np.stack([x, 2 * x])), FS)           # batched, scale-free
    assert isinstance(got_batch, torch.Tensor)
    np.testing.assert_allclose(got_batch[1].numpy(), got, atol=1e-6 * np.abs(got).max())


def test_fidelity_against_gwpy(glitch_batch, scans):
    "Every view of every glitch correlates with gwpy's q_transform at r >= 0.95."
    r = np.array([[pearson(mine, ref) for mine, ref in zip(scans[i], reference_scan(x, FS))]
                  for i, x in enumerate(glitch_batch)])
    print("\nPearson r (rows: glitches, columns: 0.5/1/2/4 s views)")
    for name, row in zip(GLITCHES, r): print(f"  {name:11s}", np.round(row, 4))
    print("  min r per view:", np.round(r.min(0), 4))
    assert r.min() >= 0.95, dict(zip(GLITCHES, r.round(3).tolist()))


def test_shape_range_and_orientation(scans):
    assert scans.shape == (len(GLITCHES), 4, 140, 170) and scans.dtype == np.float32
    assert scans.min() >= 0 and scans.max() <= 1
    assert scans[:, :, 127:].max() == 0                           # above 1291 Hz: unreachable at 4096 Hz
    for i, f0 in [(0, 60), (1, 250), (2, 900)]:
        for view in scans[i]:
            row = np.unravel_index(view.argmax(), view.shape)[0]
            assert abs(SCAN_FREQUENCIES[row] / f0 - 1) < 0.25, (f0, SCAN_FREQUENCIES[row])
            loudest = view.max(0)                                    # per column; clipped glitches plateau
            assert abs(np.flatnonzero(loudest >= 0.9 * loudest.max()).mean() - 85) <= 3
    # the chirp rises (218 Hz at column 50, 382 Hz at column 120 of the 0.5 s view)
    ridge = lambda col: SCAN_FREQUENCIES[40 + scans[4, 0, 40:, col].argmax()]       # rows above ~40 Hz
    assert 150 < ridge(50) < 300 and 280 < ridge(120) < 500, (ridge(50), ridge(120))


def test_grids():
    assert SCAN_FREQUENCIES.shape == (140,) and np.all(np.diff(SCAN_FREQUENCIES) > 0)
    assert SCAN_FREQUENCIES[0] == pytest.approx(10) and SCAN_FREQUENCIES[-1] == pytest.approx(2048)
    for d in (0.5, 1, 2, 4):
        t = scan_times(d)
        assert t.shape == (170,) and t[85] == 0 and t[0] == pytest.approx(-d / 2)


def test_single_segment_torch_and_centers(glitch_batch, scans):
    one = omega_scan(glitch_batch[2], FS)
    assert one.shape == (4, 140, 170)
    np.testing.assert_allclose(one, scans[2], atol=1e-5)
    as_torch = omega_scan(torch.from_numpy(glitch_batch[:2]).float(), FS)
    assert isinstance(as_torch, torch.Tensor) and as_torch.dtype == torch.float32 and as_torch.shape == (2, 4, 140, 170)
    assert pearson(as_torch.numpy(), scans[:2]) > 0.999
    # moving the centre by 0.25 s moves the glitch by 0.25 s / (4 s / 170) columns in the 4 s view
    moved = omega_scan(glitch_batch[:2], FS, center=[4.25, 4.0])
    col = np.unravel_index(moved[0, 3].argmax(), (140, 170))[1]
    assert abs(col - (85 - 0.25 / (4 / 170))) <= 2
    np.testing.assert_allclose(moved[1], scans[1], atol=1e-5)


def test_strain_scale_does_not_matter(glitch_batch, scans):
    np.testing.assert_allclose(omega_scan(glitch_batch[0] * 1e-21, FS), scans[0], atol=1e-4)


def test_higher_sample_rate_reaches_2048_hz():
    fs, n = 16384, 8 * 16384
    x = add_glitch(coloured_noise(np.random.default_rng(3), n, fs), sine_gaussian(1800, 10, n, fs), 12, fs)
    scan = omega_scan(x, fs)
    row, col = np.unravel_index(scan[0].argmax(), (140, 170))
    assert abs(SCAN_FREQUENCIES[row] / 1800 - 1) < 0.25 and abs(col - 85) <= 3


def test_fidelity_against_gwpy_simulator_profile():
    "The simulator's profile (8192 Hz, 16 s segments, whitened by the fast circular path) also matches gwpy at r >= 0.95."
    fs, n = 8192, 16 * 8192
    rng = np.random.default_rng(7)
    glitches = [(sine_gaussian(30, 4, n, fs), 15), (sine_gaussian(250, 40, n, fs), 12), (sine_gaussian(1500, 20, n, fs), 12)]
    batch = np.stack([add_glitch(coloured_noise(rng, n, fs), g, snr, fs) for g, snr in glitches])
    r = np.array([[pearson(m, ref) for m, ref in zip(mine, reference_scan(x, fs))] for mine, x in zip(omega_scan(batch, fs), batch)])
    print("\n8192 Hz / 16 s: Pearson r per glitch and view\n", r.round(4))
    assert r.min() >= 0.95, r.round(3).tolist()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(glitch_batch, scans):
    out = omega_scan(torch.from_numpy(glitch_batch).cuda(), FS)
    assert out.device.type == "cuda"
    np.testing.assert_allclose(out.cpu().numpy(), scans, atol=2e-3)


def test_bad_input(glitch_batch):
    x = glitch_batch[:3].copy()
    x[2, 1000] = np.nan
    with pytest.raises(ValueError, match="strain row 2 contains NaN or Inf"): omega_scan(x, FS)
    y = glitch_batch[0].copy(); y[5] = np.inf
    with pytest.raises(ValueError, match="strain contains NaN or Inf"): omega_scan(y, FS)
    with pytest.raises(ValueError, match="too short"): omega_scan(glitch_batch[:, :int(5.9 * FS)], FS)
    with pytest.raises(ValueError, match="3-D"): omega_scan(glitch_batch[None], FS)
    with pytest.raises(ValueError, match="cannot reach frange"): omega_scan(glitch_batch[0], 30)
    with pytest.raises(ValueError, match="whole number"): omega_scan(glitch_batch[0], 4096.5)
    with pytest.raises(ValueError, match="too close to the edge"): omega_scan(glitch_batch[0], FS, center=2.9)
    with pytest.raises(ValueError, match=r"batch row 1"): omega_scan(glitch_batch[:2], FS, center=[4.0, 5.5])
    with pytest.raises(ValueError, match="one value per batch row"): omega_scan(glitch_batch[:2], FS, center=[4.0, 4.0, 4.0])
    assert omega_scan(glitch_batch[0, :6 * FS], FS).shape == (4, 140, 170)   # 6 s is just enough


def test_scan_command_npy(tmp_path, glitch_batch, scans):
    np.save(tmp_path / "segs.npy", glitch_batch[:3])
    out = tmp_path / "out" / "scans.h5"
    assert scan_command(["--strain", str(tmp_path / "segs.npy"), "--sample-rate", "4096", "--out", str(out),
                         "--label", "Blip", "--sample-type", "test", "--ifo", "L1", "--batch-size", "2"]) == 0
    with h5py.File(out, "r") as f:
        assert sorted(f["Blip/test"]) == ["segs_000000", "segs_000001", "segs_000002"]
        for v, name in enumerate(("0.5.png", "1.0.png", "2.0.png", "4.0.png")):
            image = f[f"Blip/test/segs_000002/{name}"][()]
            assert image.shape == (1, 140, 170) and image.dtype == np.float32
            np.testing.assert_allclose(image[0], scans[2, v, ::-1], atol=1e-5)   # image = flipped scan
    meta = pd.read_csv(out.parent / "metadata.csv")
    assert list(meta.gravityspy_id) == ["segs_000000", "segs_000001", "segs_000002"]
    assert set(meta.label) == {"Blip"} and set(meta.sample_type) == {"test"} and set(meta.ifo) == {"L1"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["metadata.csv", "scans.h5"]   # no temp files left


def test_scan_command_h5_with_gps(tmp_path, glitch_batch):
    path = tmp_path / "strain.h5"
    with h5py.File(path, "w") as f:
        f["strain"] = glitch_batch[:2]
        f["strain"].attrs["gps_start"] = [1.0e9, 1.0e9 + 100]
        f["other"] = np.zeros(3)
    out = tmp_path / "scans.h5"
    with pytest.raises(ValueError, match="--dataset"):
        scan_command(["--strain", str(path), "--sample-rate", "4096", "--out", str(out)])
    with pytest.raises(KeyError, match="no dataset 'nope'"):
        scan_command(["--strain", str(path), "--dataset", "nope", "--sample-rate", "4096", "--out", str(out)])
    assert scan_command(["--strain", str(path), "--dataset", "strain", "--sample-rate", "4096", "--out", str(out),
                         "--center", "4.5"]) == 0
    meta = pd.read_csv(tmp_path / "metadata.csv")
    assert list(meta.label) == ["None_of_the_Above"] * 2
    np.testing.assert_allclose(meta.event_time, [1.0e9 + 4.5, 1.0e9 + 104.5])
    np.testing.assert_allclose(meta.peak_time, meta.event_time)
    with h5py.File(out, "r") as f: assert len(f["None_of_the_Above/test"]) == 2


def test_scan_command_bad_input(tmp_path, glitch_batch):
    bad = glitch_batch[:2].copy(); bad[1, 7] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match=r"row\(s\) 1 contain NaN"):
        scan_command(["--strain", str(tmp_path / "bad.npy"), "--sample-rate", "4096", "--out", str(tmp_path / "x.h5")])
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "metadata.csv").exists()
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        scan_command(["--strain", str(tmp_path / "missing.npy"), "--sample-rate", "4096", "--out", str(tmp_path / "x.h5")])


def test_real_o3a_strain_matches_gwpy_q_transform():
    "On real LIGO glitches (faint scattered light, a faint whistle, loud light modulation) the scan is gwpy's."
    from pathlib import Path
    from gravityaudit.qscan import gwpy_q_transform
    real = np.load(Path(__file__).parent / "real_strain" / "o3a_glitches.npz")
    fs = float(real["sample_rate"])
    ours = omega_scan(real["strain"], fs)
    for label, x, scan in zip(real["label"], real["strain"], ours):
        for view, (a, b) in enumerate(zip(scan, gwpy_q_transform(x, fs))):
            r = np.corrcoef(a.ravel(), b.ravel())[0, 1]
            assert r >= 0.95, f"{label} view {view}: r = {r:.3f} against gwpy's q_transform"
    # without a trigger gwpy picks the plane of the loudest tile anywhere; the light modulation and the whistle agree
    for k in (0, 2):
        r = np.corrcoef(ours[k].ravel(), gwpy_q_transform(real["strain"][k], fs, search="segment").ravel())[0, 1]
        assert r >= 0.95, f"{real['label'][k]}: r = {r:.3f} against gwpy without a trigger time"


def test_tile_snr_is_gwpys_peak():
    "omega_scan(..., with_peak=True) reports sqrt(2 Z) and the frequency of the loudest tile near the trigger, as gwpy's QGram.peak."
    import warnings
    from pathlib import Path
    from gwpy.timeseries import TimeSeries
    from gwpy.segments import Segment
    from gwpy.signal.qtransform import q_scan
    real = np.load(Path(__file__).parent / "real_strain" / "o3a_glitches.npz")
    fs = float(real["sample_rate"])
    scans, peak = omega_scan(real["strain"], fs, with_peak=True)
    test_scans = omega_scan(real["strain"], fs)
    np.testing.assert_array_equal(scans, test_scans)
    for x, ours, frequency in zip(real["strain"], peak["snr"], peak["frequency"]):
        data = TimeSeries(x.astype(np.float64), sample_rate=fs, t0=0)
        white = data.whiten(asd=data.asd(2, 1, window="hann", method="median"), fduration=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            qgram, _ = q_scan(white, qrange=(4, 64), frange=(10, 2048), search=Segment(3.75, 4.25))
        assert abs(ours / qgram.peak["snr"] - 1) < 0.05, (ours, qgram.peak["snr"])
        assert abs(frequency / qgram.peak["frequency"] - 1) < 0.1, (frequency, qgram.peak["frequency"])
