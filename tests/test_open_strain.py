"""Tests of gravityaudit.open_strain against gravityaudit.local_archive: real HTTP between gwpy/gwosc and the local GWOSC
server on 127.0.0.1, strain files written by the simulator with glitches injected at known GPS times."""
import pickle, socket, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
from gravityaudit.local_archive import LocalGwoscServer, write_archive
from gravityaudit.open_strain import GwoscSource, LocalStrainSource, StrainUnavailable, strain_source
from gravityaudit.qscan import measure_scan, omega_scan

GPS = 1238166016                        # start of the archive (O3a), a whole second as GWOSC files start
SECONDS, FILE = 128, 32                 # four files of 32 s per detector
INJECTIONS = [("H1", GPS + 21.7, "Blip", 25.0), ("H1", GPS + 70.0, "Tomte", 30.0), ("L1", GPS + 45.2, "Koi_Fish", 30.0)]
GAP = (GPS + 100, GPS + 101)            # NaN in the H1 strain
MISSING = (GPS + 40, GPS + 41)          # the L1 file GPS+32..GPS+64 (with the koi fish) is not written


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    "A local GWOSC-format archive: H1 with a blip, a tomte and a NaN gap; L1 with a missing file."
    folder = tmp_path_factory.mktemp("archive")
    for k, ifo in enumerate(("H1", "L1")):
        write_archive(folder, ifo, GPS, SECONDS, glitches=[(t, family, snr) for i, t, family, snr in INJECTIONS if i == ifo], seed=k,
                      file_duration=FILE, gaps=[GAP] if ifo == "H1" else [], missing=[MISSING] if ifo == "L1" else [])
    return folder


@pytest.fixture(scope="module")
def server(archive):
    with LocalGwoscServer(archive) as s: yield s


def peak_time(strain, center):
    "Time (s from `center`) of the loudest moment of the omega scan of `strain` centred on `center` (s from its start)."
    return measure_scan(omega_scan(strain.data, strain.sample_rate, center=center))["peak_time"]


@pytest.mark.parametrize("ifo, gps, family, snr", [x for x in INJECTIONS if x[0] == "H1"])
def test_fetched_strain_shows_the_glitch_where_it_was_injected(server, tmp_path, ifo, gps, family, snr):
    "8 s fetched over HTTP through gwpy, not centred on the glitch: the scan's loudest moment is the injection time."
    source = GwoscSource(server.host, cache=tmp_path)
    start = np.floor(gps) - 4.0 + 0.25                         # the glitch sits (gps - start) s into the segment, not in the middle
    strain = source.fetch(ifo, start, start + 8.0)
    assert strain.sample_rate == 4096.0 and len(strain.data) == 8 * 4096 and strain.start_time == start
    middle = 4.0
    assert peak_time(strain, middle) == pytest.approx(gps - start - middle, abs=0.05)


def test_quiet_strain_has_no_loud_moment(server, tmp_path):
    "Noise without a glitch: its loudest tile's SNR is far below that of the injected blip (SNR 25)."
    source = GwoscSource(server.host, cache=tmp_path)
    snr = lambda t: float(omega_scan(source.fetch("H1", t - 4, t + 4).data, 4096.0, center=4.0, with_peak=True)[1]["snr"])
    blip, quiet = snr(GPS + 21.7), snr(GPS + 50.0)
    assert blip > 20 and quiet < 10


def test_gwosc_and_local_files_give_the_same_samples(server, archive, tmp_path):
    "The same span read over HTTP and read from the folder, across a file boundary: identical samples and start."
    a = GwoscSource(server.host, cache=tmp_path).fetch("H1", GPS + 60.5, GPS + 68.5)
    b = LocalStrainSource(archive).fetch("H1", GPS + 60.5, GPS + 68.5)
    assert a.start_time == b.start_time and np.array_equal(a.data, b.data)


def test_gaps_give_strain_unavailable_with_a_reason(server, archive, tmp_path):
    source, local = GwoscSource(server.host, cache=tmp_path), LocalStrainSource(archive)
    for s in (source, local):
        with pytest.raises(StrainUnavailable, match="NaN in strain"): s.fetch("H1", GAP[0] - 4, GAP[0] + 4)
    with pytest.raises(StrainUnavailable, match=r"no open data for L1 .*\(data gap or not public\)"): source.fetch("L1", GPS + 41, GPS + 49)
    with pytest.raises(StrainUnavailable, match="no open data for H1"): source.fetch("H1", GPS + 600, GPS + 608)
    with pytest.raises(StrainUnavailable, match="data gap in local files"): local.fetch("L1", GPS + 60, GPS + 68)
    with pytest.raises(StrainUnavailable, match="not covered by local files"): local.fetch("V1", GPS + 60, GPS + 68)
    assert isinstance(StrainUnavailable("x"), ValueError)


RERUN = """
import sys, time
from gravityaudit.open_strain import GwoscSource
t = time.perf_counter()
strain = GwoscSource(sys.argv[1], cache=sys.argv[2]).fetch("H1", float(sys.argv[3]), float(sys.argv[3]) + 8)
print(len(strain.data), strain.start_time, time.perf_counter() - t)
"""


def fetch_in_new_process(host, cache, start):
    "Fetch 8 s of H1 from `start` in a fresh Python process (no in-memory cache of gwosc's JSON): (samples, start, seconds)."
    out = subprocess.run([sys.executable, "-c", RERUN, host, str(cache), str(start)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    n, t0, seconds = out.stdout.split()
    return int(n), float(t0), float(seconds)


def test_a_rerun_is_served_from_the_disk_cache(server, tmp_path):
    "A second process fetching the same span (or a span inside it) makes no HTTP request; one with an empty cache does."
    before = len(server.requests)
    assert fetch_in_new_process(server.host, tmp_path / "cache", GPS + 10)[:2] == (8 * 4096, GPS + 10)
    first = len(server.requests)
    assert first - before >= 4 and any("/archive/data/" in r for r in server.requests[before:])
    assert fetch_in_new_process(server.host, tmp_path / "cache", GPS + 10)[:2] == (8 * 4096, GPS + 10)
    assert len(server.requests) == first                                   # nothing asked of the host
    fetch_in_new_process(server.host, tmp_path / "other_cache", GPS + 10)
    assert len(server.requests) > first                                    # the count does move when the cache is empty


def test_sources_travel_by_pickle_and_specs(archive, server, tmp_path):
    source = pickle.loads(pickle.dumps(strain_source(f"gwosc:{server.host}", cache=tmp_path)))
    assert isinstance(source, GwoscSource) and source.host == server.host and source.cache == tmp_path
    assert len(source.fetch("H1", GPS + 1, GPS + 2).data) == 4096
    local = pickle.loads(pickle.dumps(strain_source(str(archive), cache=tmp_path)))
    assert isinstance(local, LocalStrainSource) and len(local.fetch("L1", GPS + 1, GPS + 2).data) == 4096
    with pytest.raises(FileNotFoundError, match="neither 'gwosc', 'gwosc:URL' nor an existing folder"): strain_source(tmp_path / "nothing")


def test_an_unreachable_host_is_an_error_not_a_gap(tmp_path):
    "No server on the port: the error goes up (the run stops and can be resumed) instead of marking triggers as gaps."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    with pytest.raises(Exception) as e: GwoscSource(f"http://127.0.0.1:{port}", cache=tmp_path, timeout=5).fetch("H1", GPS, GPS + 8)
    assert not isinstance(e.value, StrainUnavailable) and isinstance(e.value, OSError)


def test_server_answers_only_what_gwosc_asks(server, archive):
    "Unknown paths and files outside the archive get 404; the run listing names the detectors and the span of the files."
    import json, urllib.error, urllib.request
    runs = json.load(urllib.request.urlopen(f"{server.host}/api/v2/runs"))
    assert runs["results"] == [dict(name="O3a", detectors=["H1", "L1"], gps_start=GPS, gps_end=GPS + SECONDS)]
    files = json.load(urllib.request.urlopen(f"{server.host}/api/v2/runs/O3a/strain-files?detector=L1&start={GPS}&stop={GPS + 40}&sample-rate=4"))
    assert [f["hdf5_url"].rsplit("/", 1)[1] for f in files["results"]] == [f"L-L1_GWOSC_4KHZ_R1-{GPS}-32.hdf5"]   # GPS+32 file is missing
    for path in ("/api/v2/nothing", "/archive/data/O3a/../../etc/passwd", "/archive/data/O3b/x.hdf5", "/api/v2/runs/O3b/strain-files"):
        with pytest.raises(urllib.error.HTTPError) as e: urllib.request.urlopen(server.host + path)
        assert e.value.code == 404


def test_a_whole_block_is_fetched_once_and_serves_every_span_in_it(server, archive, tmp_path):
    "block=128 (the H1 archive is one aligned 128 s block): one fetch of the block, later spans need no request;"
    "L1 misses a file, so its block is not published whole: the span alone is fetched, and the block is not asked again."
    source, local = GwoscSource(server.host, cache=tmp_path, block=128), LocalStrainSource(archive)
    before = len(server.requests)
    a = source.fetch("H1", GPS + 3.5, GPS + 11.5)
    assert sum("/archive/data/" in r for r in server.requests[before:]) == 4              # the block's four files
    middle = len(server.requests)
    for start in (GPS + 30.0, GPS + 61.25, GPS + 119.5):
        b = source.fetch("H1", start, start + 8)
        assert np.array_equal(b.data, local.fetch("H1", start, start + 8).data) and b.start_time == start
    assert len(server.requests) == middle
    assert np.array_equal(a.data, local.fetch("H1", GPS + 3.5, GPS + 11.5).data)
    c = source.fetch("L1", GPS + 70, GPS + 78)
    assert np.array_equal(c.data, local.fetch("L1", GPS + 70, GPS + 78).data)
    assert ("L1", GPS, GPS + 128) in source.missing_blocks
    n = len(server.requests)
    source.fetch("L1", GPS + 100, GPS + 108)
    assert not any(f"start={GPS}&stop={GPS + 128}" in r for r in server.requests[n:])      # the missing block is not asked again


def test_gwosc_follows_the_servers_pages(server):
    "gwosc's own locator, one result per page: it follows the `next` links and gets every H1 file, in GPS order."
    from gwosc.locate import get_urls
    urls = get_urls("H1", GPS, GPS + SECONDS, host=server.host, pagesize=1)
    assert [u.rsplit("/", 1)[1] for u in urls] == [f"H-H1_GWOSC_4KHZ_R1-{GPS + k * FILE}-{FILE}.hdf5" for k in range(SECONDS // FILE)]


@pytest.mark.parametrize("block", [None, 4096])
def test_a_span_off_the_sample_grid_is_served(server, tmp_path, block):
    "Trigger times are not on the 4096 Hz grid: gwpy starts at the nearest sample, which covers the span to within one sample."
    start = GPS + 10.0 + 0.7 / 4096                            # 0.7 samples past a sample: gwpy starts at the nearest one, 0.3 after
    strain = GwoscSource(server.host, cache=tmp_path, block=block).fetch("H1", start, start + 8.0)
    assert abs(strain.start_time - start) < 1 / 4096 and len(strain.data) >= 8 * 4096 - 1


def test_frame_files_are_read_through_gwpy(archive, tmp_path):
    "GWF frames (T050017 names, GWOSC channel) written by gwpy: a span across two frames reads the same samples as the HDF5 archive."
    pytest.importorskip("lalframe", reason="no GWF library (the dev extra installs lalsuite)")
    from gwpy.timeseries import TimeSeries
    source = LocalStrainSource(archive)
    for start in (GPS, GPS + FILE):
        s = source.fetch("H1", start, start + FILE)
        TimeSeries(s.data, sample_rate=s.sample_rate, t0=s.start_time, channel="H1:GWOSC-4KHZ_R1_STRAIN").write(
            str(tmp_path / f"H-H1_GWOSC_4KHZ_R1-{start}-{FILE}.gwf"))
    frames = LocalStrainSource(tmp_path)
    got, want = frames.fetch("H1", GPS + 21.7 - 4, GPS + 21.7 + 4), source.fetch("H1", GPS + 21.7 - 4, GPS + 21.7 + 4)
    assert got.start_time == want.start_time and got.sample_rate == 4096.0 and np.allclose(got.data, want.data)
    assert peak_time(got, 4.0) == pytest.approx(0.0, abs=0.05)           # the blip injected at GPS + 21.7
    with pytest.raises(StrainUnavailable, match="not covered by local files"): frames.fetch("H1", GPS + 70, GPS + 78)
