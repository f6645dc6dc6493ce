"""training.data.download against a local HTTP server with Range support."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from training.data.speech_commands import download


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves the bytes in `server.files` (path → bytes), honouring `Range: bytes=N-`."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = self.server.files.get(self.path)
        self.server.requests.append((self.path, self.headers.get("Range")))
        if body is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.files, httpd.requests = {}, []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url(server, name: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/{name}"


def make_archive(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


# Incompressible content so the archive is big enough to cut in the middle.
MEMBERS = {"yes/a_nohash_0.wav": bytes(range(256)) * 300, "testing_list.txt": b"yes/a_nohash_0.wav\n"}


def test_full_download_and_extraction(server, tmp_path):
    archive = make_archive(MEMBERS)
    server.files["/sc.tar.gz"] = archive
    root = download(
        tmp_path / "data", url(server, "sc.tar.gz"), expected_size=len(archive),
        sha256=hashlib.sha256(archive).hexdigest(), progress=False,
    )  # fmt: skip
    assert (root / "yes/a_nohash_0.wav").read_bytes() == MEMBERS["yes/a_nohash_0.wav"]
    assert (root / "testing_list.txt").read_bytes() == MEMBERS["testing_list.txt"]
    assert not (root / "sc.tar.gz.part").exists() and (root / ".sc.tar.gz.done").exists()
    assert server.requests == [("/sc.tar.gz", None)]


def test_resume_uses_a_range_request(server, tmp_path):
    archive = make_archive(MEMBERS)
    server.files["/sc.tar.gz"] = archive
    root = tmp_path / "data"
    root.mkdir()
    half = len(archive) // 2
    (root / "sc.tar.gz.part").write_bytes(archive[:half])  # an interrupted earlier transfer
    download(root, url(server, "sc.tar.gz"), sha256=hashlib.sha256(archive).hexdigest(), progress=False)
    assert server.requests == [("/sc.tar.gz", f"bytes={half}-")]
    assert (root / "yes/a_nohash_0.wav").read_bytes() == MEMBERS["yes/a_nohash_0.wav"]


def test_second_call_does_nothing(server, tmp_path):
    server.files["/sc.tar.gz"] = make_archive(MEMBERS)
    download(tmp_path, url(server, "sc.tar.gz"), progress=False)
    (tmp_path / "yes/a_nohash_0.wav").unlink()
    download(tmp_path, url(server, "sc.tar.gz"), progress=False)
    assert len(server.requests) == 1 and not (tmp_path / "yes/a_nohash_0.wav").exists()


def test_wrong_checksum_is_rejected(server, tmp_path):
    server.files["/sc.tar.gz"] = make_archive(MEMBERS)
    with pytest.raises(ValueError, match=r"sc\.tar\.gz: sha256 mismatch \(expected 0{64}, got [0-9a-f]{64}\)"):
        download(tmp_path, url(server, "sc.tar.gz"), sha256="0" * 64, progress=False)
    assert not (tmp_path / "yes").exists() and not (tmp_path / ".sc.tar.gz.done").exists()
    assert not (tmp_path / "sc.tar.gz.part").exists()


def test_wrong_size_is_rejected(server, tmp_path):
    archive = make_archive(MEMBERS)
    server.files["/sc.tar.gz"] = archive
    with pytest.raises(ValueError, match=rf"size {len(archive)} bytes, expected {len(archive) + 1}"):
        download(tmp_path, url(server, "sc.tar.gz"), expected_size=len(archive) + 1, progress=False)


@pytest.mark.parametrize(
    ("members", "links", "reason"),
    [
        ({"ok.txt": b"fine", "../escape.txt": b"evil"}, None, r"'\.\./escape\.txt': '\.\.' would escape"),
        ({"ok.txt": b"fine", "/tmp/abs.txt": b"evil"}, None, r"'/tmp/abs\.txt': absolute path"),
        ({"ok.txt": b"fine"}, {"link": "/etc/passwd"}, r"'link': links are not allowed"),
    ],
)
def test_unsafe_members_are_refused(server, tmp_path, members, links, reason):
    server.files["/bad.tar.gz"] = make_archive(members, links)
    root = tmp_path / "inside"
    with pytest.raises(ValueError, match=rf"unsafe archive member {reason}"):
        download(root, url(server, "bad.tar.gz"), progress=False)
    assert not (tmp_path / "escape.txt").exists()
    assert not (root / "ok.txt").exists()  # checked before anything is written
    assert not (root / ".bad.tar.gz.done").exists()


def test_http_error_names_the_url(server, tmp_path):
    with pytest.raises(OSError, match=r"download of http://127\.0\.0\.1:\d+/missing\.tar\.gz failed: HTTP 404"):
        download(tmp_path, url(server, "missing.tar.gz"), progress=False)


def test_import_path():
    from training.data.download import download as direct

    assert download is direct and Path(download.__code__.co_filename).name == "download.py"
