"""security_report against a loopback Debian archive: real .debs (dpkg-deb),
a gpg-signed InRelease, Packages.xz, served over HTTP on 127.0.0.1."""

import functools
import gzip
import hashlib
import http.server
import io
import json
import lzma
import os
import shutil
import subprocess
import tempfile
import threading

import pytest

import security_report

CVE_LINES = ("* CVE-2099-0001: heap overflow in inflate (Closes: #1).", "* CVE-2099-0002 - infinite loop.")


def _changelog(pkg, entries):
    text = ""
    for version, suite, urgency, lines in entries:
        body = "\n".join(f"  {line}" for line in lines) or "  * Rebuild."
        text += (f"{pkg} ({version}) {suite}; urgency={urgency}\n\n{body}\n\n"
                 f" -- Maintainer <m@example.org>  Sat, 28 Nov 2026 10:00:00 +0000\n\n")
    return text


def build_deb(out_dir, pkg, version, changelog_entries):
    """A real .deb (dpkg-deb) holding only its changelog.Debian.gz."""
    root = tempfile.mkdtemp(dir=out_dir)
    os.makedirs(os.path.join(root, "DEBIAN"))
    with open(os.path.join(root, "DEBIAN", "control"), "w", encoding="utf-8") as f:
        f.write(f"Package: {pkg}\nVersion: {version}\nArchitecture: amd64\nMaintainer: m <m@example.org>\n"
                f"Description: test package\n")
    doc = os.path.join(root, "usr", "share", "doc", pkg)
    os.makedirs(doc)
    with open(os.path.join(doc, "changelog.Debian.gz"), "wb") as f:
        f.write(gzip.compress(_changelog(pkg, changelog_entries).encode(), mtime=0))
    # Debian's pool names leave the epoch out.
    path = os.path.join(out_dir, f"{pkg}_{version.split(':')[-1]}_amd64.deb")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, path], check=True, capture_output=True)
    shutil.rmtree(root)
    return path


class Archive:
    """dists/<suite>/{InRelease, main/binary-amd64/Packages.xz} and pool/ under one directory."""

    def __init__(self, root, gpg):
        self.root, self.gpg = root, gpg

    def add_suite(self, suite, debs):
        stanzas = []
        for path in debs:
            rel = os.path.join("pool", "main", os.path.basename(path))
            os.makedirs(os.path.join(self.root, "pool", "main"), exist_ok=True)
            shutil.copy(path, os.path.join(self.root, rel))
            with open(path, "rb") as f:
                data = f.read()
            control = subprocess.run(["dpkg-deb", "--field", path], check=True, capture_output=True, text=True).stdout
            stanzas.append(control.rstrip("\n") + f"\nFilename: {rel}\nSize: {len(data)}\n"
                           f"SHA256: {hashlib.sha256(data).hexdigest()}\n")
        dist = os.path.join(self.root, "dists", suite)
        os.makedirs(os.path.join(dist, "main", "binary-amd64"))
        packages = lzma.compress("\n".join(stanzas).encode())
        with open(os.path.join(dist, "main", "binary-amd64", "Packages.xz"), "wb") as f:
            f.write(packages)
        release = (f"Origin: Debian\nSuite: {suite}\nCodename: {suite}\nArchitectures: amd64\nComponents: main\n"
                   f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} main/binary-amd64/Packages.xz\n")
        with open(os.path.join(dist, "Release"), "w", encoding="utf-8") as f:
            f.write(release)
        self.gpg("--clearsign", "--output", os.path.join(dist, "InRelease"), os.path.join(dist, "Release"))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def gpg():
    # gpg-agent's socket lives in GNUPGHOME, whose path must stay short.
    home = tempfile.mkdtemp(prefix="gpg-", dir="/tmp")

    def run(*args):
        return subprocess.run(["gpg", "--homedir", home, "--batch", "--quiet", "--pinentry-mode", "loopback",
                               "--passphrase", "", *args], check=True, capture_output=True).stdout

    run("--quick-gen-key", "Loopback Archive <archive@example.org>", "ed25519", "sign", "never")
    keyring = os.path.join(home, "archive.gpg")
    with open(keyring, "wb") as f:
        f.write(run("--export"))
    yield run, keyring
    subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def archive(gpg, tmp_path_factory):
    """bookworm: libfoo1 1.0-1 and bar 2.0-1 -> 2.0-2 (a point release);
    bookworm-security: libfoo1 1.0-1+deb12u1 with two CVE lines."""
    run, _ = gpg
    root = str(tmp_path_factory.mktemp("archive"))
    debs = str(tmp_path_factory.mktemp("debs"))
    old_entry = ("1:1.0-1", "unstable", "medium", ["* New upstream release."])
    foo_new = build_deb(debs, "libfoo1", "1:1.0-1+deb12u1",
                        [("1:1.0-1+deb12u1", "bookworm-security", "high", list(CVE_LINES)), old_entry])
    foo_old = build_deb(debs, "libfoo1", "1:1.0-1", [old_entry])
    bar_new = build_deb(debs, "bar", "2.0-2", [("2.0-2", "bookworm", "medium", ["* Fix a crash."]),
                                               ("2.0-1", "unstable", "low", ["* CVE-2000-0001 was fixed long ago."])])
    a = Archive(root, run)
    a.add_suite("bookworm", [foo_old, bar_new])
    a.add_suite("bookworm-security", [foo_new])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _lock(*entries):
    return [{"name": n, "version": v, "arch": "amd64"} for n, v in entries]


def _report(archive, gpg, lock, suites=("bookworm", "bookworm-security")):
    _, url = archive
    out = io.StringIO()
    code = security_report.report(lock, [(s, url) for s in suites], gpg[1], out)
    return code, out.getvalue()


def test_names_the_superseded_package_its_suite_and_its_cve_lines(archive, gpg):
    code, out = _report(archive, gpg, _lock(("libfoo1", "1:1.0-1"), ("bar", "2.0-1"), ("baz", "3")))
    assert code == 1, out
    lines = out.splitlines()
    i = lines.index("libfoo1 1:1.0-1 -> 1:1.0-1+deb12u1 (bookworm-security, security)")
    assert lines[i + 1] == "  1:1.0-1+deb12u1 (bookworm-security; urgency=high): 2 CVE line(s)"
    assert lines[i + 2:i + 4] == [f"    {line}" for line in CVE_LINES]
    # The point release is listed with its changelog; the CVE of an entry at
    # or below the pin is not new and is not shown.
    assert "bar 2.0-1 -> 2.0-2 (bookworm, point release)" in lines
    assert "  2.0-2 (bookworm; urgency=medium): 0 CVE line(s)" in lines
    assert "CVE-2000-0001" not in out
    assert "baz" not in out and lines[-1].startswith("security_report: 2 of 3 pinned packages superseded")


def test_a_current_pin_or_only_a_point_release_exits_zero(archive, gpg):
    assert _report(archive, gpg, _lock(("libfoo1", "1:1.0-1+deb12u1")))[0] == 0
    code, out = _report(archive, gpg, _lock(("bar", "2.0-1")))
    assert code == 0 and "none by a security suite" in out


def test_a_tampered_index_is_refused(archive, gpg):
    root, _ = archive
    path = os.path.join(root, "dists", "bookworm-security", "main", "binary-amd64", "Packages.xz")
    with open(path, "rb") as f:
        good = f.read()
    try:
        with open(path, "wb") as f:
            f.write(lzma.compress(lzma.decompress(good).replace(b"deb12u1", b"deb12u9")))
        with pytest.raises(security_report.ReportError, match="Packages.xz: sha256 is not the one InRelease names"):
            _report(archive, gpg, _lock(("libfoo1", "1:1.0-1")))
    finally:
        with open(path, "wb") as f:
            f.write(good)


def test_an_unsigned_or_foreign_release_is_refused(archive, gpg, tmp_path):
    other = tmp_path / "other.gpg"
    other.write_bytes(b"")
    with pytest.raises(security_report.ReportError, match="signature not accepted by gpgv"):
        security_report.report(_lock(("libfoo1", "1:1.0-1")), [("bookworm", archive[1])], str(other), io.StringIO())


def test_the_cli_reads_a_lock_and_exits_two_on_an_unreachable_archive(archive, gpg, tmp_path, capsys):
    lock = tmp_path / "lock.json"
    lock.write_text(json.dumps(_lock(("libfoo1", "1:1.0-1"))))
    url = archive[1]
    args = ["--lock", str(lock), "--keyring", gpg[1]]
    assert security_report.main(args + [f"--suite=bookworm-security={url}"]) == 1
    assert security_report.main(args + [f"--suite=bookworm-security={url}/nowhere"]) == 2
    assert "cannot fetch" in capsys.readouterr().err


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))
