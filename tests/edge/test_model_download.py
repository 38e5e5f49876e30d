"""Model downloads over HTTPS with the truck's token: the certificate is verified, refusals say why."""

from __future__ import annotations

import hashlib
import shutil
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edge.config import EdgeSettings, load_settings
from edge.model_update import ModelRefused, download
from tests.edge.test_tls import make_certificates

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
BODY = b"model bytes " * 5000
SHA = hashlib.sha256(BODY).hexdigest()
TAMPERED = "1" * 64  # the server answers this name with BODY: a file changed on the server's disk
SERVED = {f"/api/models/{SHA}.onnx": BODY, f"/api/models/{TAMPERED}.onnx": BODY}


REDIRECTED = "2" * 64  # the server answers this name with a redirect to another host, over http
REDIRECT_TO: list[str] = []  # that host's URL, set by the test
SEEN_THERE: list[str | None] = []  # the Authorization headers that host received


class Elsewhere(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        SEEN_THERE.append(self.headers.get("Authorization"))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *_args: Any) -> None:
        pass


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == f"/api/models/{REDIRECTED}.onnx" and REDIRECT_TO:
            self.send_response(302)
            self.send_header("Location", REDIRECT_TO[0])
            self.end_headers()
            return
        if self.headers.get("Authorization") != "Bearer trv_good":
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"detail":"authentication required"}')
            return
        body = SERVED.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body if body is not None else b"{}")

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("https")
    make_certificates(folder)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "server.crt", folder / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://localhost:{server.server_address[1]}", folder / "ca.crt"
    finally:
        server.shutdown()


def settings(tmp_path: Path, server: str | None, **models: Any) -> EdgeSettings:
    return load_settings(None, {"truck_id": "benne-07", "source": "x",
                                "models": {"server": server, "dir": str(tmp_path), **models}}, environ={})


def test_download_checks_the_certificate_and_the_hash(tmp_path: Path, https_server: tuple[str, Path]) -> None:
    url, ca = https_server
    target = tmp_path / f"{SHA}.onnx"
    download(settings(tmp_path, url, token="trv_good", ca_file=str(ca)), SHA, target)
    assert target.read_bytes() == BODY
    with pytest.raises(ModelRefused, match="CERTIFICATE_VERIFY_FAILED"):  # a server the truck cannot trust
        download(settings(tmp_path, url, token="trv_good"), SHA, tmp_path / "other.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no partial file left


@pytest.mark.parametrize("models,sha,words", [
    ({"token": "trv_bad"}, SHA, 'download failed: HTTP 401 from https://localhost:{port}/api/models/{sha}.onnx '
                                '{{"detail":"authentication required"}}'),
    ({"token": "trv_good"}, "0" * 64, "download failed: HTTP 404"),
    ({"token": "trv_good", "max_mb": 0.01}, SHA, "download refused: larger than models.max_mb (0.01 MB)"),
])
def test_refusals_name_the_reason_and_leave_nothing(tmp_path: Path, https_server: tuple[str, Path],
                                                     models: dict[str, Any], sha: str, words: str) -> None:
    url, ca = https_server
    port = url.rsplit(":", 1)[1]
    with pytest.raises(ModelRefused) as refused:
        download(settings(tmp_path, url, ca_file=str(ca), **models), sha, tmp_path / f"{sha}.onnx")
    assert str(refused.value).startswith(words.format(port=port, sha=sha))
    assert list(tmp_path.iterdir()) == []


def test_a_download_removes_the_parts_a_crash_left(tmp_path: Path, https_server: tuple[str, Path]) -> None:
    """A crash in the middle of a download left ``<sha256>.onnx.part`` for ever (a slow disk leak on
    the truck): the next download removes them. Files download() does not name stay."""
    url, ca = https_server
    (tmp_path / f"{'a' * 64}.onnx.part").write_bytes(b"half a model")
    (tmp_path / f"{SHA}.onnx.part").write_bytes(b"half of this one")  # rewritten from its start
    (tmp_path / "notes.part").write_bytes(b"not ours")
    download(settings(tmp_path, url, token="trv_good", ca_file=str(ca)), SHA, tmp_path / f"{SHA}.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{SHA}.onnx", "notes.part"]
    assert (tmp_path / f"{SHA}.onnx").read_bytes() == BODY


def test_a_wrong_hash_and_a_missing_server_are_refused(tmp_path: Path, https_server: tuple[str, Path]) -> None:
    url, ca = https_server
    with pytest.raises(ModelRefused, match=r"models\.server is not set"):
        download(settings(tmp_path, None), SHA, tmp_path / "x.onnx")
    token_file = tmp_path.parent / "token"  # the token read from a file, as on a truck
    token_file.write_text("trv_good\n")
    with pytest.raises(ModelRefused, match=f"wrong hash: the server sent {len(BODY)} bytes with sha256 {SHA}, "
                                           f"expected {TAMPERED}"):
        download(settings(tmp_path, url, token_file=str(token_file), ca_file=str(ca)), TAMPERED,
                 tmp_path / f"{TAMPERED}.onnx")
    assert list(tmp_path.iterdir()) == []


def test_a_redirect_is_refused_and_the_token_stays_with_the_server(tmp_path: Path,
                                                                  https_server: tuple[str, Path]) -> None:
    """urllib follows a redirect with every header of the request: the truck's bearer token went to
    whatever host, over plain http too, a redirect named (a misconfigured proxy, a hijacked route).
    The server never redirects a model download: the truck refuses one, and sends its token nowhere."""
    url, ca = https_server
    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    threading.Thread(target=elsewhere.serve_forever, daemon=True).start()
    REDIRECT_TO[:] = [f"http://127.0.0.1:{elsewhere.server_address[1]}/steal"]
    SEEN_THERE.clear()
    try:
        with pytest.raises(ModelRefused) as refused:
            download(settings(tmp_path, url, token="trv_good", ca_file=str(ca)), REDIRECTED,
                     tmp_path / f"{REDIRECTED}.onnx")
    finally:
        REDIRECT_TO.clear()
        elsewhere.shutdown()
    assert SEEN_THERE == [], "the token left for another host"
    assert str(refused.value) == (f"download refused: {url}/api/models/{REDIRECTED}.onnx redirects to "
                                  f"http://127.0.0.1:{elsewhere.server_address[1]}/steal (the truck sends its "
                                  "token to models.server only)")
    assert list(tmp_path.iterdir()) == []
