"""Tests of gravityaudit.download against a real HTTP server on 127.0.0.1 (no internet).

The server below is a small Zenodo look-alike: `/api/records/<record>` answers the JSON listing and
`/records/<record>/files/<name>` serves bytes, honouring `Range: bytes=a-` (206 / 416) unless told not to.
It logs every file request (path, Range header, status, bytes actually sent).
"""
from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gravityaudit import cli
from gravityaudit.download import (KNOWN_FILES, DownloadError, RemoteFile, VerificationError, download,
                                   download_command, fetch_file, file_md5, record_files)

RECORD = "777"
H5 = bytes(range(256)) * 64                      # 16,384 bytes
CSV = b"gravityspy_id,label,sample_type\nx1,Blip,train\nx2,Whistle,test\n"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@dataclass
class Site:
    "What the local server serves and how it behaves; `log` fills with (path, range, status, bytes sent)."
    files: dict = field(default_factory=lambda: {"glitches.h5": H5, "metadata.csv": CSV})
    record: str = RECORD
    listing: list | None = None          # JSON "files" entries; None -> built from `files`
    honour_range: bool = True
    cut_after: int | None = None         # send this many bytes of a file body, then drop the connection
    log: list = field(default_factory=list)
    listing_requests: int = 0

    def entries(self):
        if self.listing is not None: return self.listing
        return [{"key": k, "size": len(v), "checksum": f"md5:{md5(v)}"} for k, v in self.files.items()]


def make_handler(site: Site):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args): pass

        def reply(self, status, body=b"", headers=None, send=None, log=None):
            sent = body if send is None else body[:send]
            # log before answering: the client may finish (and the test read the log) before this thread returns
            if log is not None: site.log.append((*log, status, len(sent)))
            self.send_response(status)
            for k, v in {**(headers or {}), "Content-Length": str(len(body))}.items(): self.send_header(k, v)
            self.end_headers()
            self.wfile.write(sent)
            return len(sent)

        def do_GET(self):
            path = urllib.parse.urlsplit(self.path).path
            if path == f"/api/records/{site.record}":
                site.listing_requests += 1
                self.reply(200, json.dumps({"id": int(site.record), "files": site.entries()}).encode(),
                           {"Content-Type": "application/json"})
                return
            m = re.fullmatch(rf"/(?:api/)?records/{site.record}/files/([^/]+)(?:/content)?", path)
            name = urllib.parse.unquote(m.group(1)) if m else None
            if name not in site.files:
                self.reply(404, b"not found")
                return
            data, wanted = site.files[name], self.headers.get("Range")
            r = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted or "")
            if wanted and site.honour_range and r:
                start = int(r.group(1))
                end = min(int(r.group(2)), len(data) - 1) if r.group(2) else len(data) - 1
                if start >= len(data):
                    self.reply(416, b"", {"Content-Range": f"bytes */{len(data)}"}, log=(path, wanted))
                else:
                    self.reply(206, data[start:end + 1], {"Content-Range": f"bytes {start}-{end}/{len(data)}"},
                               send=site.cut_after, log=(path, wanted))
            else:
                self.reply(200, data, send=site.cut_after, log=(path, wanted))
    return Handler


@pytest.fixture
def serve():
    "Start servers on random ports of 127.0.0.1; yield a function Site -> base URL; stop them all afterwards."
    servers = []

    def start(site: Site) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(site))
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server, thread in servers:
        server.shutdown(); server.server_close(); thread.join(5)


@pytest.fixture
def closed_port_url():
    "A base URL on 127.0.0.1 where nothing listens."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def get(record, dest, files=None, base_url=None, **kw):
    return download(record, dest, files, base_url=base_url, chunk_size=kw.pop("chunk_size", 1000), timeout=5,
                    progress=kw.pop("progress", False), **kw)


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_full_download_verifies_md5(serve, tmp_path):
    site = Site()
    paths = get(RECORD, tmp_path, base_url=serve(site))
    assert paths == [tmp_path / "glitches.h5", tmp_path / "metadata.csv"]
    assert paths[0].read_bytes() == H5 and paths[1].read_bytes() == CSV
    assert names_in(tmp_path) == ["glitches.h5", "metadata.csv"]          # no .part left
    assert [(p, r, s) for p, r, s, _ in site.log] == [
        (f"/records/{RECORD}/files/glitches.h5", None, 200), (f"/records/{RECORD}/files/metadata.csv", None, 200)]


def test_resume_sends_range_and_only_the_missing_bytes(serve, tmp_path):
    site = Site()
    (tmp_path / "glitches.h5.part").write_bytes(H5[:3000])
    (path,) = get(RECORD, tmp_path, ["glitches.h5"], base_url=serve(site))
    assert site.log == [(f"/records/{RECORD}/files/glitches.h5", "bytes=3000-", 206, len(H5) - 3000)]
    assert file_md5(path) == md5(H5)
    assert names_in(tmp_path) == ["glitches.h5"]


def test_md5_mismatch_raises_keeps_part_and_no_final_file(serve, tmp_path):
    wrong = [{"key": "glitches.h5", "size": len(H5), "checksum": f"md5:{md5(b'other bytes')}"}]
    site = Site(listing=wrong)
    base = serve(site)
    with pytest.raises(VerificationError, match=r"MD5 .* but the record lists .* for glitches\.h5"):
        get(RECORD, tmp_path, base_url=base)
    assert names_in(tmp_path) == ["glitches.h5.part"]
    assert (tmp_path / "glitches.h5.part").read_bytes() == H5
    # a rerun finds the whole .part, asks the server nothing, and still refuses it
    with pytest.raises(VerificationError, match="delete it to download again"):
        get(RECORD, tmp_path, base_url=base)
    assert len(site.log) == 1 and names_in(tmp_path) == ["glitches.h5.part"]


def test_size_mismatch_raises_and_keeps_part(serve, tmp_path):
    site = Site(listing=[{"key": "metadata.csv", "size": len(CSV) + 10, "checksum": f"md5:{md5(CSV)}"}])
    with pytest.raises(VerificationError, match=rf"{len(CSV)} bytes, but the record lists {len(CSV) + 10}"):
        get(RECORD, tmp_path, base_url=serve(site))
    assert names_in(tmp_path) == ["metadata.csv.part"]


def test_part_larger_than_listed_size_restarts(serve, tmp_path):
    site = Site()
    (tmp_path / "metadata.csv.part").write_bytes(b"z" * (len(CSV) + 100))
    (path,) = get(RECORD, tmp_path, ["metadata.csv"], base_url=serve(site))
    assert [(r, s, n) for _, r, s, n in site.log] == [(None, 200, len(CSV))]      # no Range asked
    assert path.read_bytes() == CSV and names_in(tmp_path) == ["metadata.csv"]


def test_server_ignoring_range_restarts_cleanly(serve, tmp_path, capsys):
    site = Site(honour_range=False)
    (tmp_path / "glitches.h5.part").write_bytes(b"\xff" * 5000)   # wrong bytes: they must not survive
    (path,) = get(RECORD, tmp_path, ["glitches.h5"], base_url=serve(site))
    assert [(r, s, n) for _, r, s, n in site.log] == [("bytes=5000-", 200, len(H5))]
    assert path.read_bytes() == H5 and names_in(tmp_path) == ["glitches.h5"]
    assert "ignored the Range request" in capsys.readouterr().err


def test_dropped_connection_keeps_part_then_resumes(serve, tmp_path):
    site = Site(cut_after=4000)
    base = serve(site)
    with pytest.raises(DownloadError, match=rf"{base}/records/{RECORD}/files/glitches.h5.*connection closed after 4,000"):
        get(RECORD, tmp_path, ["glitches.h5"], base_url=base)
    assert (tmp_path / "glitches.h5.part").stat().st_size == 4000 and not (tmp_path / "glitches.h5").exists()
    site.cut_after = None
    (path,) = get(RECORD, tmp_path, ["glitches.h5"], base_url=base)
    assert site.log[-1][1:] == ("bytes=4000-", 206, len(H5) - 4000)
    assert path.read_bytes() == H5


def test_whole_part_is_verified_without_a_request(serve, tmp_path):
    site = Site()
    (tmp_path / "glitches.h5.part").write_bytes(H5)
    (path,) = get(RECORD, tmp_path, ["glitches.h5"], base_url=serve(site))
    assert site.log == [] and path.read_bytes() == H5


def test_complete_file_is_skipped_and_wrong_one_replaced(serve, tmp_path, capsys):
    site = Site()
    base = serve(site)
    get(RECORD, tmp_path, base_url=base)
    site.log.clear()
    get(RECORD, tmp_path, base_url=base)
    assert site.log == []
    assert "already complete (MD5 matches the record), skipped" in capsys.readouterr().err
    (tmp_path / "metadata.csv").write_bytes(b"damaged")
    get(RECORD, tmp_path, base_url=base)
    assert [p for p, *_ in site.log] == [f"/records/{RECORD}/files/metadata.csv"]
    assert (tmp_path / "metadata.csv").read_bytes() == CSV


def test_unknown_file_name_lists_the_record(serve, tmp_path):
    site = Site()
    with pytest.raises(ValueError, match=r"no file named 'trainingsetv1d0.h5'; the record has: glitches.h5, metadata.csv"):
        get(RECORD, tmp_path, ["metadata.csv", "trainingsetv1d0.h5"], base_url=serve(site))
    assert site.log == [] and names_in(tmp_path) == []


def test_listing_self_link_is_used(serve, tmp_path):
    base_site = Site()
    base = serve(base_site)
    base_site.listing = [{"key": "metadata.csv", "size": len(CSV), "checksum": f"md5:{md5(CSV)}",
                          "links": {"self": f"{base}/api/records/{RECORD}/files/metadata.csv/content"}}]
    get(RECORD, tmp_path, base_url=base)
    assert [p for p, *_ in base_site.log] == [f"/api/records/{RECORD}/files/metadata.csv/content"]


def test_network_errors_name_the_url(serve, tmp_path, closed_port_url):
    with pytest.raises(DownloadError, match=re.escape(f"could not reach {closed_port_url}/api/records/{RECORD}")):
        get(RECORD, tmp_path, base_url=closed_port_url)
    site = Site(listing=[{"key": "gone.h5", "size": 10, "checksum": f"md5:{md5(b'x')}"}])
    base = serve(site)
    with pytest.raises(DownloadError, match=re.escape(f"{base}/records/{RECORD}/files/gone.h5?download=1: HTTP 404")):
        get(RECORD, tmp_path, base_url=base)


def test_unverifiable_file_is_refused(serve, tmp_path):
    site = Site(listing=[{"key": "metadata.csv"}])
    with pytest.raises(VerificationError, match="neither size nor MD5 is known for metadata.csv"):
        get(RECORD, tmp_path, base_url=serve(site))
    assert site.log == []


def test_fallback_table_when_listing_unreachable(closed_port_url, capsys):
    listing = record_files(1476156, closed_port_url, timeout=5)
    assert [(f.name, f.size, f.md5) for f in listing] == [(n, s, None) for n, s in KNOWN_FILES["1476156"].items()]
    assert listing[0] == RemoteFile("trainingsetv1d0.h5", 3_287_645_752, None,
                                    f"{closed_port_url}/records/1476156/files/trainingsetv1d0.h5?download=1")
    assert "using the built-in table" in capsys.readouterr().err


def test_live_listing_preferred_and_completed_by_table(serve):
    site = Site(record="1476156", files={},
                listing=[{"key": "trainingset_v1d0_metadata.csv", "checksum": "md5:" + "a" * 32},
                         {"key": "trainingsetv1d0.h5", "size": 99, "checksum": "md5:" + "b" * 32}])
    listing = {f.name: f for f in record_files("1476156", serve(site), timeout=5)}
    assert (listing["trainingset_v1d0_metadata.csv"].size, listing["trainingset_v1d0_metadata.csv"].md5) == (248_944, "a" * 32)
    assert (listing["trainingsetv1d0.h5"].size, listing["trainingsetv1d0.h5"].md5) == (99, "b" * 32)


def test_fetch_file_progress_bar_runs(serve, tmp_path):
    site = Site()
    base = serve(site)
    remote = RemoteFile("glitches.h5", len(H5), md5(H5), f"{base}/records/{RECORD}/files/glitches.h5?download=1")
    assert fetch_file(remote, tmp_path / "new", chunk_size=512, timeout=5, progress=True).read_bytes() == H5


def test_cli_main_download(serve, tmp_path, capsys):
    site = Site()
    base = serve(site)
    dest = tmp_path / "gs"
    assert cli.main(["download", "--record", RECORD, "--dest", str(dest), "--base-url", base,
                     "--files", "metadata.csv", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(dest / "metadata.csv")
    assert (dest / "metadata.csv").read_bytes() == CSV
    assert cli.main(["download", "--record", RECORD, "--dest", str(dest), "--base-url", base, "--files", "x.h5"]) == 1
    err = capsys.readouterr().err
    assert "gravityaudit download: error:" in err and "the record has: glitches.h5, metadata.csv" in err
    assert download_command(["--record", RECORD, "--base-url", base, "--list"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"glitches.h5\t{len(H5)}\t{md5(H5)}", f"metadata.csv\t{len(CSV)}\t{md5(CSV)}"]


def test_cli_errors(closed_port_url, tmp_path, capsys):
    assert download_command(["--record", RECORD, "--dest", str(tmp_path), "--base-url", closed_port_url]) == 1
    assert f"could not reach {closed_port_url}/api/records/{RECORD}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        download_command(["--record", RECORD])           # --dest missing
    assert download_command(["--record", "not-a-record", "--dest", str(tmp_path)]) == 1
    assert "not a Zenodo record number" in capsys.readouterr().err


def test_size_unknown_whole_part_answered_416(serve, tmp_path):
    site = Site(listing=[{"key": "metadata.csv", "checksum": f"md5:{md5(CSV)}"}])       # MD5 only, no size
    (tmp_path / "metadata.csv.part").write_bytes(CSV)
    (path,) = get(RECORD, tmp_path, base_url=serve(site))
    assert [(r, s, n) for _, r, s, n in site.log] == [(f"bytes={len(CSV)}-", 416, 0)]
    assert path.read_bytes() == CSV


def test_size_unknown_oversized_part_restarts_after_416(serve, tmp_path):
    site = Site(listing=[{"key": "metadata.csv", "checksum": f"md5:{md5(CSV)}"}])
    (tmp_path / "metadata.csv.part").write_bytes(b"q" * (len(CSV) + 7))
    (path,) = get(RECORD, tmp_path, base_url=serve(site))
    assert [(r, s) for _, r, s, _ in site.log] == [(f"bytes={len(CSV) + 7}-", 416), (None, 200)]
    assert path.read_bytes() == CSV and names_in(tmp_path) == ["metadata.csv"]
