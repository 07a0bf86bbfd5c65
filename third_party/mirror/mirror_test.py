"""The fetchers with input mirrors, against real pinned files and loopback servers.

A loopback HTTP server stands in for Debian's archive (and, in one test, for
an https mirror); the `.deb`s and wheels are the real pinned ones. The
fetchers run as the build runs them: fetch.py as a program, wheelhouse.py's
mirror step on the wheelhouse layout.
"""

import functools
import glob
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading

import pytest

import mirror
from third_party.pip import wheelhouse

_RUNFILES = os.path.join(os.environ["TEST_SRCDIR"], "veid_sidecar")
_FETCH = os.path.join(_RUNFILES, "third_party", "debian", "fetch.py")
_LOCK = os.path.join(_RUNFILES, "third_party", "debian", "packages.lock.json")
_WHEELS_LOCK = os.path.join(_RUNFILES, "third_party", "pip", "wheels.lock.json")


class _Archive(http.server.ThreadingHTTPServer):
    """Serves a directory; records every path asked for; 404s the paths in `gone`."""

    def __init__(self, root):
        self.requests, self.gone = [], set()
        handler = functools.partial(self._Handler, directory=root)
        super().__init__(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.server_address[1]}"

    class _Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            self.server.requests.append(self.path)
            if self.path in self.server.gone:
                self.send_error(404)
                return
            super().do_GET()

        def log_message(self, *args):
            pass


@pytest.fixture
def serve():
    servers = []

    def start(root, tls=None):
        server = _Archive(str(root))
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            server.base = server.base.replace("http://", "https://")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _debs(n=2):
    """The n smallest .debs of the lock, with the verified files Bazel fetched."""
    with open(_LOCK, encoding="utf-8") as f:
        entries = sorted(json.load(f), key=lambda e: e["size"])[:n]
    found = {os.path.basename(p): p for p in glob.glob(os.path.join(_RUNFILES, "..", "debian", "debs", "*.deb"))}
    return [(e, found[os.path.basename(e["url"])]) for e in entries]


def _mirror_with(root, entry, src, flip=False):
    folder = root / "sha256" / entry["sha256"]
    folder.mkdir(parents=True, exist_ok=True)
    data = bytearray(open(src, "rb").read())
    if flip:
        data[len(data) // 2] ^= 0x01
    (folder / os.path.basename(entry["url"])).write_bytes(bytes(data))


def _archive_with(root, entries):
    """An archive tree holding the files (_fetch points the lock's URLs at it)."""
    for entry, src in entries:
        shutil.copyfile(src, root / os.path.basename(entry["url"]))


def _fetch(tmp_path, lock_entries, base, mirrors, **env):
    lock = tmp_path / "lock.json"
    lock.write_text(json.dumps([
        dict(e, url=f"{base}/{os.path.basename(e['url'])}", snapshot_url=f"{base}/snapshot/{os.path.basename(e['url'])}")
        for e in lock_entries]))
    env = dict(os.environ, VEID_DEB_CACHE=str(tmp_path / "cache"), VEID_MIRRORS=mirrors, **env)
    return subprocess.run([sys.executable, "-S", _FETCH, "--lock", str(lock), "--timeout", "10"],
                          capture_output=True, text=True, env=env)


def test_upstream_404_is_served_by_the_mirror(tmp_path, serve):
    (a, a_src), (b, b_src) = _debs()
    archive_root, mirror_root = tmp_path / "archive", tmp_path / "mirror"
    archive_root.mkdir()
    _archive_with(archive_root, [(a, a_src), (b, b_src)])
    archive = serve(archive_root)
    b_file = os.path.basename(b["url"])
    archive.gone = {f"/{b_file}", f"/snapshot/{b_file}"}  # superseded: the archive and snapshot say 404

    # Without the mirror the build stops, naming the package and the 404.
    proc = _fetch(tmp_path, [a, b], archive.base, "")
    assert proc.returncode == 1, proc.stderr
    assert f"{b['name']} {b['version']}" in proc.stderr and "HTTP 404" in proc.stderr, proc.stderr

    _mirror_with(mirror_root, b, b_src)
    archive.requests.clear()
    shutil.rmtree(tmp_path / "cache")  # a was fetched and cached above
    proc = _fetch(tmp_path, [a, b], archive.base, str(mirror_root))
    assert proc.returncode == 0, proc.stderr
    paths = proc.stdout.split()
    assert [mirror.sha256_file(p) for p in paths] == [a["sha256"], b["sha256"]]
    # b came from the mirror, tried first; a, which the mirror lacks, from the archive.
    assert archive.requests == [f"/{os.path.basename(a['url'])}"]
    assert f"{a['name']} {a['version']}" in proc.stderr and "not at 1 earlier location" in proc.stderr


def test_snapshot_url_when_the_pool_url_is_gone(tmp_path, serve):
    (a, a_src), = _debs(1)
    archive_root = tmp_path / "archive"
    (archive_root / "snapshot").mkdir(parents=True)
    shutil.copyfile(a_src, archive_root / "snapshot" / os.path.basename(a["url"]))  # only the snapshot has it
    archive = serve(archive_root)
    proc = _fetch(tmp_path, [a], archive.base, "")
    assert proc.returncode == 0, proc.stderr
    assert mirror.sha256_file(proc.stdout.split()[0]) == a["sha256"]
    assert archive.requests == [f"/{os.path.basename(a['url'])}", f"/snapshot/{os.path.basename(a['url'])}"]


def test_mirror_over_http_before_upstream(tmp_path, serve):
    (a, a_src), = _debs(1)
    mirror_root, archive_root = tmp_path / "mirror", tmp_path / "archive"
    archive_root.mkdir()
    _mirror_with(mirror_root, a, a_src)
    mirror_server, archive = serve(mirror_root), serve(archive_root)  # the archive has nothing
    proc = _fetch(tmp_path, [a], archive.base, f"{tmp_path / 'absent'},{mirror_server.base}")
    assert proc.returncode == 0, proc.stderr
    assert mirror.sha256_file(proc.stdout.split()[0]) == a["sha256"]
    assert mirror_server.requests == [mirror.mirror_url("", a["sha256"], os.path.basename(a["url"]))]
    assert archive.requests == []


def test_https_mirror(tmp_path, serve):
    """An https:// base, as a release's mirror is published (a self-signed loopback CA here)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    (a, a_src), = _debs(1)
    mirror_root, archive_root = tmp_path / "mirror", tmp_path / "archive"
    archive_root.mkdir()
    _mirror_with(mirror_root, a, a_src)
    mirror_server, archive = serve(mirror_root, tls=(str(cert), str(key))), serve(archive_root)
    assert mirror_server.base.startswith("https://")
    proc = _fetch(tmp_path, [a], archive.base, mirror_server.base, SSL_CERT_FILE=str(cert))
    assert proc.returncode == 0, proc.stderr
    assert mirror.sha256_file(proc.stdout.split()[0]) == a["sha256"]
    assert len(mirror_server.requests) == 1 and archive.requests == []
    # A certificate the client does not trust is a miss like any unreachable mirror.
    shutil.rmtree(tmp_path / "cache")
    proc = _fetch(tmp_path, [a], archive.base, mirror_server.base)
    assert proc.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in proc.stderr, proc.stderr


def test_flipped_byte_on_the_mirror_stops_the_fetch(tmp_path, serve):
    (a, a_src), = _debs(1)
    archive_root, mirror_root = tmp_path / "archive", tmp_path / "mirror"
    archive_root.mkdir()
    _archive_with(archive_root, [(a, a_src)])
    _mirror_with(mirror_root, a, a_src, flip=True)
    archive = serve(archive_root)
    proc = _fetch(tmp_path, [a], archive.base, str(mirror_root))
    assert proc.returncode == 1
    # Named, with the mirror's URL; not quietly replaced by the archive's good copy.
    assert f"{a['name']} {a['version']}" in proc.stderr, proc.stderr
    assert f"file://{mirror_root}/sha256/{a['sha256']}" in proc.stderr
    assert "this mirror's copy is not the pinned file" in proc.stderr
    assert archive.requests == []
    assert not glob.glob(str(tmp_path / "cache" / "sha256" / "*" / "*.deb"))


def _a_wheel():
    """The smallest wheel of wheels.lock.json with its verified file in @wheelhouse."""
    with open(_WHEELS_LOCK, encoding="utf-8") as f:
        wheels = json.load(f)["wheels"]
    found = {os.path.basename(p): p for p in glob.glob(os.path.join(_RUNFILES, "..", "wheelhouse", "wheels", "*.whl"))}
    w = min((w for w in wheels if w["filename"] in found), key=lambda w: os.path.getsize(found[w["filename"]]))
    return w, found[w["filename"]]


@pytest.mark.parametrize("flip", [False, True])
def test_wheelhouse_takes_wheels_from_the_mirror(tmp_path, monkeypatch, flip):
    w, src = _a_wheel()
    folder = tmp_path / "mirror" / "sha256" / w["sha256"]
    folder.mkdir(parents=True)
    data = bytearray(open(src, "rb").read())
    if flip:
        data[len(data) // 3] ^= 0x80
    (folder / w["filename"]).write_bytes(bytes(data))
    monkeypatch.setenv(mirror.ENV, str(tmp_path / "mirror"))
    files = {w["name"]: (w["filename"], w["sha256"])}
    missing = [(w["name"], w["version"], ["0" * 64, w["sha256"]])]
    house = tmp_path / "wheelhouse"
    if flip:
        with pytest.raises(wheelhouse.LockError, match=f"{w['name']}=={w['version']}: file://"):
            wheelhouse.from_mirrors(missing, files, str(house))
        assert not (house / "sha256" / w["sha256"] / w["filename"]).exists()
    else:
        assert wheelhouse.from_mirrors(missing, files, str(house)) == []
        assert mirror.sha256_file(house / "sha256" / w["sha256"] / w["filename"]) == w["sha256"]
        # A wheel no mirror has is left for pip.
        other = [("not-mirrored", "1.0", ["f" * 64])]
        assert wheelhouse.from_mirrors(other, {"not-mirrored": ("x-1.0-py3-none-any.whl", "f" * 64)},
                                       str(house)) == other


@pytest.mark.parametrize("value,expected", [
    ("", []),
    ("/srv/m, https://m.example/veid/ \n file:///x", ["file:///srv/m", "https://m.example/veid", "file:///x"]),
])
def test_bases(value, expected):
    assert mirror.bases({mirror.ENV: value}) == expected


@pytest.mark.parametrize("value", ["relative/dir", "ftp://m.example"])
def test_bases_refuses_what_it_cannot_fetch_from(value):
    with pytest.raises(mirror.FetchError, match="neither an absolute directory"):
        mirror.bases({mirror.ENV: value})


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))
