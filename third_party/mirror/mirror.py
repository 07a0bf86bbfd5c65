"""Pinned downloads that try the input mirrors before the upstream URL.

A mirror is a directory or URL base laid out as `sha256/<sha256>/<file name>`
(what `bazel run //image:mirror -- DIR` writes). Which mirrors to try, in
order, comes from `VEID_MIRRORS`: whitespace- or comma-separated absolute
directories or `file://`, `https://` (or `http://`) bases. Every file, from a
mirror or upstream, must have the sha256 its lock pins: a file that is
missing (404, no such file, unreachable host) is looked for at the next
location, but a file with other bytes stops the download, naming the package,
since a mirror or archive serving wrong bytes is an incident, not a miss.

Used by third_party/debian/fetch.py (the `.deb`s), third_party/pip/wheelhouse.py
(the wheels) and tools/nix_seed.py (Nix's store); third_party/mirror/mirror.bzl
does the same for Bazel's own downloader. Stdlib only: it runs on the host's
bootstrap Python before any pinned package exists.
"""

import hashlib
import os
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

ENV = "VEID_MIRRORS"
CORRUPT_MIRROR = ("this mirror's copy is not the pinned file: replace it from a good copy "
                  "(`bazel run //image:mirror -- DIR` checks every hash) or drop the mirror")


class FetchError(Exception):
    pass


class NotFound(FetchError):
    """No location had the file at all (as opposed to one with other bytes)."""


def bases(environ=None):
    """The configured mirror bases as URLs, in the order they are tried."""
    value = (os.environ if environ is None else environ).get(ENV, "")
    found = []
    for item in re.split(r"[\s,]+", value.strip()):
        if not item:
            continue
        if item.startswith("/"):
            item = "file://" + urllib.parse.quote(os.path.normpath(item))
        elif not item.startswith(("file:///", "https://", "http://")):
            raise FetchError(
                f"{ENV}: {item!r} is neither an absolute directory nor a file://, https:// or http:// base")
        found.append(item.rstrip("/"))
    return found


def mirror_url(base, sha256, filename):
    return f"{base}/sha256/{sha256}/{urllib.parse.quote(filename)}"


def candidate_urls(sha256, filename, upstream, mirrors=None):
    """Each mirror's copy of the file, then the upstream URLs."""
    mirrors = bases() if mirrors is None else mirrors
    return [mirror_url(b, sha256, filename) for b in mirrors] + [u for u in upstream if u]


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url, dest_dir, timeout):
    """Downloads url into a temp file in dest_dir; returns (path, sha256, size)."""
    fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=".partial-")
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp, digest.hexdigest(), size


def fetch(label, sha256, filename, upstream, dest, size=None, timeout=60, mirrors=None, hint=""):
    """Puts the verified file at dest (atomically) and returns the URL it came from.

    label names the package in every error; hint is appended to them (how to
    refresh the lock). Progress of a mirror miss goes to stderr in one line,
    so an operator sees which location served what.
    """
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    mirrors = bases() if mirrors is None else mirrors
    from_mirror = {mirror_url(b, sha256, filename) for b in mirrors}
    misses = []
    for url in candidate_urls(sha256, filename, upstream, mirrors):
        try:
            tmp, got, got_size = _download(url, os.path.dirname(dest) or ".", timeout)
        except urllib.error.HTTPError as e:
            misses.append(f"{url}: HTTP {e.code}")
            continue
        except (urllib.error.URLError, OSError) as e:
            misses.append(f"{url}: {getattr(e, 'reason', e)}")
            continue
        if got != sha256 or (size is not None and got_size != size):
            os.unlink(tmp)
            want = f"sha256 {sha256}" + (f" and {size} bytes" if size is not None else "")
            fix = CORRUPT_MIRROR if url in from_mirror else hint
            raise FetchError(f"{label}: {url} has sha256 {got} and {got_size} bytes, the lock pins {want}"
                             f"{'; ' + fix if fix else ''}")
        os.replace(tmp, dest)
        if misses:
            print(f"mirror: {label}: from {url} (not at {len(misses)} earlier location(s))", file=sys.stderr)
        return url
    raise NotFound(f"{label}: cannot download it ({'; '.join(misses)}){'; ' + hint if hint else ''}")
