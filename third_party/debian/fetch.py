#!/usr/bin/env python3
"""Download and verify the .debs pinned in third_party/debian/packages.lock.json.

    python3 third_party/debian/fetch.py                 # fill the cache, print paths
    python3 third_party/debian/fetch.py --out DIR       # also copy the .debs into DIR
    python3 third_party/debian/fetch.py --extract ROOT  # unpack every data.tar into ROOT

Each .deb is fetched from the input mirrors in `VEID_MIRRORS`
(third_party/mirror/mirror.py), else its `url` (deb.debian.org), else its
`snapshot_url` (snapshot.debian.org), and must match the lock's size and
sha256. Verified files live in a content-addressed cache,
`$VEID_DEB_CACHE/sha256/<sha256>/<file>` (default VEID_DEB_CACHE:
~/.cache/veid-sidecar/debs), so a second run needs no network. A file found
nowhere (404: the archive moved on after a security update, and no mirror has
it) or a hash/size mismatch anywhere stops with the package's name; refresh
the lock with `python3 tools/debian_lock.py` (after `apt-get update`) and
commit it, or point VEID_MIRRORS at the release's mirror.

Stdlib only (Python 3.11).
"""

import argparse
import json
import os
import posixpath
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# deb.py beside this script and third_party/mirror/mirror.py; PYTHONSAFEPATH
# (set for Bazel) keeps them off sys.path.
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "mirror")]
import deb as deb_lib  # noqa: E402  pylint: disable=wrong-import-position
import mirror  # noqa: E402  pylint: disable=wrong-import-position

DEFAULT_LOCK = os.path.join(HERE, "packages.lock.json")
REFRESH = "refresh the lock with `apt-get update && python3 tools/debian_lock.py` and commit it"


FetchError = mirror.FetchError


def cache_root():
    root = os.environ.get("VEID_DEB_CACHE")
    if not root:
        root = os.path.join(os.path.expanduser("~"), ".cache", "veid-sidecar", "debs")
    return root


def load_lock(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def cached_path(entry, root=None):
    return os.path.join(root or cache_root(), "sha256", entry["sha256"], posixpath.basename(entry["url"]))


def ensure(entry, root=None, timeout=60):
    """Returns the path of the verified .deb for a lock entry, downloading it if needed."""
    path = cached_path(entry, root)
    if os.path.exists(path):
        if mirror.sha256_file(path) == entry["sha256"] and os.path.getsize(path) == entry["size"]:
            return path
        os.unlink(path)  # corrupt cache entry: fetch again
    label = f"{entry['name']} {entry['version']} ({entry['arch']})"
    mirror.fetch(label, entry["sha256"], posixpath.basename(entry["url"]),
                 [entry["url"], entry.get("snapshot_url")], path, size=entry["size"],
                 timeout=timeout, hint=REFRESH)
    return path


def extract(deb, root):
    """Unpacks a .deb's data.tar under root (no maintainer scripts, no ownership)."""
    root = os.path.abspath(root)
    with deb_lib.data_tar(deb) as tar:
        for m in tar:
            rel = posixpath.normpath(m.name)
            if rel == ".":
                continue
            if rel.startswith("../") or rel.startswith("/"):
                raise FetchError(f"{deb}: unsafe path {m.name!r}")
            dest = os.path.join(root, rel)
            if m.isdir():
                os.makedirs(dest, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if os.path.lexists(dest) and not os.path.isdir(dest):
                os.unlink(dest)
            if m.issym():
                os.symlink(m.linkname, dest)
            elif m.islnk():
                os.link(os.path.join(root, posixpath.normpath(m.linkname)), dest)
            elif m.isfile():
                with tar.extractfile(m) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
                os.chmod(dest, 0o755 if m.mode & 0o111 else 0o644)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lock", default=DEFAULT_LOCK)
    ap.add_argument("--out", help="copy the verified .debs into this directory")
    ap.add_argument("--extract", metavar="ROOT", help="unpack every package's data.tar into ROOT")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args(argv)
    try:
        paths = [ensure(e, timeout=args.timeout) for e in load_lock(args.lock)]
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            for p in paths:
                shutil.copyfile(p, os.path.join(args.out, os.path.basename(p)))
        if args.extract:
            for p in paths:
                extract(p, args.extract)
    except (FetchError, deb_lib.DebError) as e:
        print(f"fetch.py: {e}", file=sys.stderr)
        return 1
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
