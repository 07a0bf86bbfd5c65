#!/usr/bin/env python3
"""Which pinned .debs has Debian superseded, and which of them fix CVEs.

    bazel run //image:security_report                  # today's Debian 12 archive
    python3 third_party/debian/security_report.py --lock packages.lock.json

For every suite (default: bookworm and bookworm-updates on deb.debian.org,
bookworm-security on its security archive) the archive's InRelease is checked
with gpgv against the keyring (Debian's archive keyring by default), its
main/binary-<arch>/Packages is checked against the sha256 InRelease names, and
every locked package with a higher version there is listed with that version
and the suite. For the newest such version the .deb itself is downloaded
(checked against the Packages sha256) and the CVE lines of its own
changelog.Debian entries above the pinned version are printed: what the fix
says it fixes, not a guess from a tracker.

Exit status: 0 nothing is superseded by a security suite (point-release and
-updates versions are listed but do not fail); 1 a security suite supersedes
a pin, so a refresh is due; 2 the archive could not be read or verified.
Not a CI gate: its answer depends on today's archive.
"""

import argparse
import dataclasses
import functools
import gzip
import hashlib
import json
import lzma
import os
import re
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deb  # noqa: E402  pylint: disable=wrong-import-position

DEFAULT_LOCK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "packages.lock.json")
DEFAULT_SUITES = (
    "bookworm=https://deb.debian.org/debian",
    "bookworm-updates=https://deb.debian.org/debian",
    "bookworm-security=https://deb.debian.org/debian-security",
)
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
COMPONENT = "main"
TIMEOUT_S = 60
CVE = re.compile(r"CVE-\d{4}-\d{4,}")
# The first line of a changelog entry: "zlib (1:1.2.13.dfsg-1+deb12u1) bookworm-security; urgency=high".
ENTRY = re.compile(r"^(\S+) \(([^)]+)\) ([^;]+);(.*)$")


class ReportError(Exception):
    """The archive could not be read or verified; the message names what and where."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    suite: str
    base_url: str
    version: str
    filename: str
    sha256: str


def suite_kind(suite: str) -> str:
    """Debian's names: <codename>-security is the security archive, <codename>-updates
    stable-updates (folded into the next point release), the codename itself the point releases."""
    if suite.endswith("-security"):
        return "security"
    if suite.endswith("-updates"):
        return "stable-updates"
    return "point release"


def version_gt(a: str, b: str) -> bool:
    """dpkg's own ordering (epochs, ~, +debNuM), not a reimplementation."""
    return subprocess.run(["dpkg", "--compare-versions", a, "gt", b], check=False).returncode == 0


def fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r:
            return r.read()
    except OSError as e:
        raise ReportError(f"cannot fetch {url}: {e}") from None


def verified_release(base_url: str, suite: str, keyring: str) -> str:
    """The body of dists/<suite>/InRelease, after gpgv accepted its signature."""
    url = f"{base_url}/dists/{suite}/InRelease"
    signed = fetch(url)
    with tempfile.TemporaryDirectory(prefix="security-report-") as tmp:
        path = os.path.join(tmp, "InRelease")
        with open(path, "wb") as f:
            f.write(signed)
        proc = subprocess.run(["gpgv", "--keyring", keyring, "--output", "-", path], capture_output=True,
                              check=False)
    if proc.returncode != 0:
        raise ReportError(f"{url}: signature not accepted by gpgv with {keyring}:\n"
                          f"{proc.stderr.decode('utf-8', 'replace').strip()}")
    return proc.stdout.decode("utf-8")


def release_sha256(release: str) -> dict:
    """{path: (sha256, size)} of the Release file's SHA256 field."""
    (fields,) = deb.paragraphs(release)[:1]
    out = {}
    for line in fields.get("SHA256", "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            out[parts[2]] = (parts[0], int(parts[1]))
    return out


def packages_index(base_url: str, suite: str, arch: str, keyring: str) -> list:
    """The suite's Packages paragraphs for `arch`, each file checked against InRelease."""
    hashes = release_sha256(verified_release(base_url, suite, keyring))
    for ext, decompress in ((".xz", lzma.decompress), (".gz", gzip.decompress), ("", bytes)):
        path = f"{COMPONENT}/binary-{arch}/Packages{ext}"
        if path in hashes:
            data = fetch(f"{base_url}/dists/{suite}/{path}")
            if hashlib.sha256(data).hexdigest() != hashes[path][0]:
                raise ReportError(f"{base_url}/dists/{suite}/{path}: sha256 is not the one InRelease names")
            return deb.paragraphs(decompress(data).decode("utf-8"))
    raise ReportError(f"{base_url}/dists/{suite}/InRelease names no {COMPONENT}/binary-{arch}/Packages")


def superseding(lock: list, indexes: dict) -> dict:
    """{package name: [Candidate]} of the locked packages some suite has a higher
    version of, one candidate per suite (its highest), highest version first."""
    found = {}
    for entry in lock:
        for (suite, base_url), paragraphs in indexes.items():
            best = None
            for p in paragraphs:
                if p.get("Package") != entry["name"] or p.get("Architecture") != entry["arch"]:
                    continue
                if version_gt(p["Version"], entry["version"]) and (best is None or version_gt(p["Version"], best.version)):
                    best = Candidate(suite, base_url, p["Version"], p["Filename"], p["SHA256"])
            if best:
                found.setdefault(entry["name"], []).append(best)
    newest_first = functools.cmp_to_key(lambda a, b: -1 if version_gt(a.version, b.version) else 1)
    for cands in found.values():
        cands.sort(key=lambda c: c.suite)
        cands.sort(key=newest_first)
    return found


def changelog_entries(text: str, above: str) -> list:
    """[(version, suite, urgency, [CVE lines])] of the changelog entries newer than `above`."""
    entries = []
    for line in text.splitlines():
        m = ENTRY.match(line)
        if m:
            urgency = re.search(r"urgency=(\w+)", m.group(4))
            entries.append((m.group(2), m.group(3).strip(), urgency.group(1) if urgency else "", []))
        elif entries and CVE.search(line):
            entries[-1][3].append(line.strip())
    return [e for e in entries if version_gt(e[0], above)]


def changelog_of(deb_path: str, package: str) -> str:
    """usr/share/doc/<package>/changelog.Debian.gz of the .deb (binNMU changelogs too)."""
    names = {f"./usr/share/doc/{package}/changelog.Debian.gz", f"usr/share/doc/{package}/changelog.Debian.gz"}
    with deb.data_tar(deb_path) as tar:
        for m in tar:
            if m.isfile() and m.name in names:
                return gzip.decompress(tar.extractfile(m).read()).decode("utf-8", "replace")
            if m.issym() and m.name.rstrip("/") in {n.rsplit("/", 1)[0] for n in names}:
                return f"(usr/share/doc/{package} is a symlink to {m.linkname}: its changelog is another package's)"
    return ""


def new_changelog(cand: Candidate, package: str) -> str:
    data = fetch(f"{cand.base_url}/{cand.filename}")
    if hashlib.sha256(data).hexdigest() != cand.sha256:
        raise ReportError(f"{cand.base_url}/{cand.filename}: sha256 is not the one the Packages index names")
    with tempfile.NamedTemporaryFile(suffix=".deb") as f:
        f.write(data)
        f.flush()
        return changelog_of(f.name, package)


def report(lock: list, suites: list, keyring: str, out=sys.stdout) -> int:
    arches = sorted({e["arch"] for e in lock} - {"all"})
    indexes = {}
    for suite, base_url in suites:
        indexes[(suite, base_url)] = [p for arch in arches for p in packages_index(base_url, suite, arch, keyring)]
    found = superseding(lock, indexes)
    pinned = {e["name"]: e for e in lock}
    security = False
    for name in sorted(found):
        cands = found[name]
        for c in cands:
            security |= suite_kind(c.suite) == "security"
            out.write(f"{name} {pinned[name]['version']} -> {c.version} ({c.suite}, {suite_kind(c.suite)})\n")
        text = new_changelog(cands[0], name)
        entries = changelog_entries(text, pinned[name]["version"]) if text and not text.startswith("(") else []
        if text.startswith("("):
            out.write(f"  changelog: {text}\n")
        elif not entries:
            out.write(f"  changelog of {cands[0].version}: no entry above {pinned[name]['version']}\n")
        for version, suite, urgency, cves in entries:
            out.write(f"  {version} ({suite}; urgency={urgency}): {len(cves)} CVE line(s)\n")
            for line in cves:
                out.write(f"    {line}\n")
    tally = sum(len(c) for c in found.values())
    out.write(f"security_report: {len(found)} of {len(lock)} pinned packages superseded ({tally} suite versions); "
              + ("a security suite supersedes a pin: refresh the lock (README: Security updates)\n" if security
                 else "none by a security suite\n"))
    return 1 if security else 0


def parse_suite(text: str):
    suite, sep, url = text.partition("=")
    if not sep or not suite or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"--suite {text!r}: want SUITE=http(s)://ARCHIVE")
    return suite, url.rstrip("/")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--lock", default=DEFAULT_LOCK, help="the Debian lock (default: %(default)s)")
    ap.add_argument("--suite", action="append", type=parse_suite,
                    help=f"SUITE=ARCHIVE_URL, repeatable (default: {' '.join(DEFAULT_SUITES)})")
    ap.add_argument("--keyring", default=DEFAULT_KEYRING, help="gpgv keyring for InRelease (default: %(default)s)")
    args = ap.parse_args(argv)
    # `bazel run` starts in the runfiles; relative paths are the caller's.
    cwd = os.environ.get("BUILD_WORKING_DIRECTORY", "")
    args.lock, args.keyring = os.path.join(cwd, args.lock), os.path.join(cwd, args.keyring)
    with open(args.lock, encoding="utf-8") as f:
        lock = json.load(f)
    try:
        return report(lock, args.suite or [parse_suite(s) for s in DEFAULT_SUITES], args.keyring)
    except (ReportError, deb.DebError) as e:
        print(f"security_report: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
