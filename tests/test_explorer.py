"Tests of the interactive explorer page: files, thumbnails, escaping, size at 35k glitches, and a real headless-Chromium run."
import os
import functools, html, json, re, shutil, subprocess, threading, time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gravityaudit.explorer import (explorer_html, explorer_points, glitch_groups, write_explorer, THUMBNAIL_SIZE)
from gravityaudit.layout import GlitchWriter

HOSTILE_LABEL = "<img src=x onerror=window.__pwned=1>"       # an HDF5 group name may not contain '/'
HOSTILE_ID = '"><svg onload=window.__pwned=2>'
SCRIPT_LABEL = "</script><script>window.__pwned=3</script>"  # only possible outside a file: tested on the page text


def blob_image(row: int, rng) -> np.ndarray:
    "A (140, 170) image in [0, 1]: faint speckle plus a bright blob centred on `row`."
    r, c = np.mgrid[0:140, 0:170]
    return np.clip(0.1 * rng.random((140, 170)) + 0.85 * np.exp(-((r - row) / 5) ** 2 - ((c - 85) / 20) ** 2), 0, 1).astype(np.float32)


def write_set(path: Path, hostile: bool = False) -> pd.DataFrame:
    "A tiny real-layout file: Blip glitches with the blob at the top, Whistle at the bottom (+ a hostile label/id)."
    rng, rows = np.random.default_rng(0), []
    with GlitchWriter(path, compression=None) as w:
        for k in range(6):
            label, row = ("Blip", 10) if k % 2 == 0 else ("Whistle", 130)
            gid = f"id{k}"
            w.add(gid, label, "train" if k < 4 else "test", np.stack([blob_image(row, rng)] * 4))
            rows.append(dict(gravityspy_id=gid, label=label, sample_type="train" if k < 4 else "test", ifo="H1", snr=10.0 + k))
    if hostile:  # GlitchWriter refuses unknown classes, so write the hostile group by hand
        with h5py.File(path, "a") as f:
            f.create_dataset(f"{HOSTILE_LABEL}/train/{HOSTILE_ID}/1.0.png", data=blob_image(70, rng)[None])
        rows.append(dict(gravityspy_id=HOSTILE_ID, label=HOSTILE_LABEL, sample_type="train", ifo="<b>L1</b>", snr=9.0))
    return pd.DataFrame(rows)


def assignments_for(metadata: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng, n = np.random.default_rng(seed), len(metadata)
    return pd.DataFrame(dict(gravityspy_id=metadata["gravityspy_id"], label=metadata["label"],
                             cluster=np.arange(n) % 3 - 1, umap_x=rng.normal(size=n), umap_y=rng.normal(size=n),
                             outlier_score=rng.random(n), membership=rng.random(n),
                             position=[np.nan] * (n - 1) + [0.25], failure_mode=["over_split"] * n))  # as the audit adds


def page_data(page_text: str) -> dict:
    "The JSON blob inside a page."
    m = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', page_text, re.S)
    return json.loads(m.group(1))


def test_write_explorer_files_and_thumbnails(tmp_path):
    meta = write_set(tmp_path / "set.h5")
    assignments = assignments_for(meta)
    page = write_explorer(tmp_path / "audit", assignments, tmp_path / "set.h5", meta)
    assert page == tmp_path / "audit" / "explorer.html"
    assert sorted(p.name for p in page.parent.iterdir()) == ["explorer.html", "explorer_plotly.min.js", "explorer_thumbs"]
    thumbs = sorted((page.parent / "explorer_thumbs").iterdir())
    assert [p.name for p in thumbs] == [f"{i:06d}.png" for i in range(6)]
    umask = os.umask(0); os.umask(umask)
    assert (page.parent / "explorer_thumbs").stat().st_mode & 0o777 == 0o777 & ~umask   # readable by the page's readers, not 0700
    # orientation: Blip (blob at row 10 = high frequency) is bright at the top, Whistle at the bottom
    for i, p in enumerate(thumbs):
        im = Image.open(p)
        assert im.size == THUMBNAIL_SIZE
        rgb = np.asarray(im.convert("RGB")).astype(float).sum(axis=(1, 2))  # brightness per thumbnail row
        top, bottom = rgb[:10].mean(), rgb[-10:].mean()
        assert (top > bottom) if assignments["label"][i] == "Blip" else (bottom > top), (i, top, bottom)
    text = page.read_text()
    assert 'src="explorer_plotly.min.js"' in text and "https://" not in text.split("<script>")[0]  # no CDN
    assert "cdn.plot.ly" not in text
    data = page_data(text)
    assert data["columns"]["id"] == list(assignments["gravityspy_id"])
    assert data["extra"]["snr"] == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    assert data["extra"]["position"] == [None] * 5 + [0.25] and data["extra"]["failure_mode"] == ["over_split"] * 6
    assert (page.parent / "explorer_plotly.min.js").stat().st_size > 1_000_000  # the real bundle, offline

    # rewriting with fewer points and no metadata (groups found by walking the file) leaves no stale thumbnails
    write_explorer(tmp_path / "audit", assignments.iloc[[5, 0]], tmp_path / "set.h5", thumbnail_format="webp")
    assert sorted(p.name for p in (page.parent / "explorer_thumbs").iterdir()) == ["000000.webp", "000001.webp"]
    assert page_data(page.read_text())["columns"]["id"] == ["id5", "id0"]
    assert not [p for p in page.parent.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_write_explorer_bad_input(tmp_path):
    meta = write_set(tmp_path / "set.h5")
    a = assignments_for(meta)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['outlier_score'\]"):
        write_explorer(tmp_path / "o", a.drop(columns="outlier_score"), tmp_path / "set.h5")
    with pytest.raises(KeyError, match="gravityspy_id 'ghost' not found"):
        write_explorer(tmp_path / "o", a.assign(gravityspy_id=["ghost"] + list(a.gravityspy_id[1:])), tmp_path / "set.h5")
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        write_explorer(tmp_path / "o", a, tmp_path / "missing.h5")
    with pytest.raises(ValueError, match="unknown duration"):
        write_explorer(tmp_path / "o", a, tmp_path / "set.h5", thumbnail_view=3.0)
    assert not (tmp_path / "o" / "explorer.html").exists()


def test_glitch_groups_metadata_and_walk(tmp_path):
    meta = write_set(tmp_path / "set.h5")
    wrong = meta.assign(sample_type=["", "test", "train", "train", "test", "test"])  # rows 0, 1 don't match the file
    with h5py.File(tmp_path / "set.h5", "r") as f:
        groups = glitch_groups(f, meta["gravityspy_id"], wrong)
    assert groups == {f"id{k}": f"{'Blip' if k % 2 == 0 else 'Whistle'}/{'train' if k < 4 else 'test'}/id{k}" for k in range(6)}


def test_page_escapes_every_data_string():
    n = 4
    points = explorer_points(pd.DataFrame(dict(
        gravityspy_id=[HOSTILE_ID, "a&b", "x", "y"], label=[SCRIPT_LABEL, HOSTILE_LABEL, "Blip", "Blip"],
        cluster=[0, 1, -1, 0], umap_x=np.arange(n, dtype=float), umap_y=np.ones(n), outlier_score=[0.1, np.nan, 0.3, 0.4],
        membership=np.ones(n))), metadata=pd.DataFrame(dict(gravityspy_id=["x"], ifo=["<script>alert(1)</script>"])))
    text = explorer_html(points, title="<i>audit</i> & co")
    for raw in (SCRIPT_LABEL, HOSTILE_LABEL, HOSTILE_ID, "<script>alert", "<i>audit"):
        assert raw not in text, raw
    assert text.count("<script") == 3 and text.count("</script>") == 3  # plotly.js, the data blob, the page script
    assert "&lt;i&gt;audit&lt;/i&gt; &amp; co" in text
    data = page_data(text)  # the strings survive intact for display through textContent
    assert data["labels"] == sorted([SCRIPT_LABEL, HOSTILE_LABEL, "Blip"])
    assert data["columns"]["id"][:2] == [HOSTILE_ID, "a&b"]
    assert data["columns"]["outlier"][1] is None
    assert data["extra"]["ifo"] == [None, None, "<script>alert(1)</script>", None]
    assert "innerHTML" not in text and "document.write" not in text


def test_page_size_35k_glitches():
    "35,000 glitches with hover metadata: the page (thumbnails and plotly.js are separate files) stays a few MB."
    n, rng = 35_000, np.random.default_rng(0)
    from gravityaudit.taxonomy import CLASSES_V1
    chars = rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"), (n, 10))
    ids = ["".join(row) for row in chars]  # Gravity Spy ids are 10 characters
    a = pd.DataFrame(dict(gravityspy_id=ids, label=rng.choice(CLASSES_V1, n), cluster=rng.integers(-1, 60, n),
                          umap_x=rng.normal(0, 5, n), umap_y=rng.normal(0, 5, n), outlier_score=rng.random(n), membership=rng.random(n)))
    meta = pd.DataFrame(dict(gravityspy_id=ids, ifo=rng.choice(["H1", "L1"], n), peak_frequency=rng.uniform(10, 2000, n),
                             snr=rng.uniform(7.5, 500, n), duration=rng.uniform(0.05, 4, n), bandwidth=rng.uniform(1, 4000, n)))
    t = time.perf_counter()
    text = explorer_html(explorer_points(a, meta))
    seconds = time.perf_counter() - t
    size = len(text.encode())
    print(f"explorer.html for {n} glitches: {size / 1e6:.2f} MB ({size / n:.0f} bytes per glitch), built in {seconds:.1f} s")
    assert size < 5_000_000
    assert "base64" not in text and "data:image" not in text  # thumbnails are never inlined
    assert len(page_data(text)["columns"]["x"]) == n


# ---------------------------------------------------------------- headless Chromium

def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name): return shutil.which(name)
    return None


@pytest.fixture
def served(tmp_path):
    "An http server on 127.0.0.1 serving tmp_path/audit; yields (folder, base url)."
    folder = tmp_path / "audit"; folder.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args): pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True); thread.start()
    try: yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally: server.shutdown(); server.server_close()


def run_selftest(chromium: str, url: str, profile: Path) -> dict:
    "Load `url?selftest=1` in headless Chromium and return the page's self-check report."
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1200,800",
           "--virtual-time-budget=20000", "--dump-dom", url + "?selftest=1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    m = re.search(r'<div id="status" data-done="1">(.*?)</div>', out.stdout, re.S)
    assert m, f"the page never finished its self-check; chromium rc={out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return json.loads(html.unescape(m.group(1)))


def test_explorer_in_headless_chromium(tmp_path, served):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (`make install-dev` installs Debian's chromium package); browser test skipped")
    folder, base = served
    meta = write_set(tmp_path / "set.h5", hostile=True)
    assignments = assignments_for(meta)
    write_explorer(folder, assignments, tmp_path / "set.h5", meta)
    st = run_selftest(chromium, f"{base}/explorer.html", tmp_path / "profile")
    print(json.dumps(st, indent=1))
    assert st["finished"] == "ok", st
    assert st["webgl"] and st["canvases"] >= 1                 # Scattergl drew into a WebGL canvas
    assert st["plotted"] == st["n"] == len(assignments)        # every glitch is on the map
    assert st["colored_pixels"] > 20                           # the rendered map really shows coloured points
    assert st["hovered"] in set(assignments["gravityspy_id"])  # a mouse move over a point fired plotly_hover ...
    assert (st["image_width"], st["image_height"]) == THUMBNAIL_SIZE  # ... and the preview loaded its thumbnail file
    row = list(assignments["gravityspy_id"]).index(st["hovered"])
    assert st["preview"] == f"explorer_thumbs/{row:06d}.png"   # the hovered glitch's own thumbnail
    assert st["info_id"] == st["hovered"]                      # its id shown as plain text in the panel
    labels = sorted(assignments["label"])
    assert st["filter"] == {"label": labels[0], "plotted": labels.count(labels[0]), "expected": labels.count(labels[0])}
    assert f"{HOSTILE_LABEL} (1)" in st["menu_labels"]         # hostile label shown as text in the menu ...
    assert st["pwned"] is False                                # ... and none of its markup ran
