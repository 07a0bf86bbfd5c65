#!/usr/bin/env python3
"""Seeds a Nix store from the input mirrors, so `nix build` fetches nothing.

    VEID_MIRRORS=/srv/veid-mirror python3 third_party/mirror/nix_seed.py [--store STORE] [--require-all]

nix/default.nix fetches every `.deb` of third_party/debian/packages.lock.json
and the wheels of third_party/pip/wheels.lock.json with `<nix/fetchurl.nix>`:
fixed-output derivations whose store path depends only on the file's name and
sha256, never on the URL. This script takes each such file from the mirrors
(hash-checked by mirror.py like every other download), adds it with
`nix-store --add-fixed sha256` under the name nix/default.nix gives it, and
checks the path is the one `nix-store --print-fixed-path` predicts; Nix then
finds every fetch already done. A file no mirror has is left to Nix's own
upstream fetch, unless --require-all (a rebuild that must not reach upstream)
makes that an error. A mirror file with other bytes stops the seeding, naming
the package.

Stdlib only; runs on the host's python3 (Nix builds need no Bazel).
"""

import argparse
import json
import os
import posixpath
import subprocess
import sys
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
_THIRD_PARTY = os.path.dirname(_HERE)
sys.path.insert(0, _HERE)
import mirror  # noqa: E402  pylint: disable=wrong-import-position

DEBIAN_LOCK = os.path.join(_THIRD_PARTY, "debian", "packages.lock.json")
WHEELS_LOCK = os.path.join(_THIRD_PARTY, "pip", "wheels.lock.json")


def store_name(filename):
    """nix/default.nix's `fetch` name: store path names may not contain '~'."""
    return filename.replace("~", "_")


def wanted():
    """(label, sha256, file name) of every file nix/default.nix fetches."""
    with open(DEBIAN_LOCK, encoding="utf-8") as f:
        for e in json.load(f):
            yield f"{e['name']} {e['version']} (deb)", e["sha256"], posixpath.basename(e["url"])
    with open(WHEELS_LOCK, encoding="utf-8") as f:
        for w in json.load(f)["wheels"]:
            if {"image", "protoc"} & set(w["used_by"]):
                yield f"{w['name']}=={w['version']} (wheel)", w["sha256"], w["filename"]


def nix_store(store, *args):
    cmd = ["nix-store"] + (["--store", store] if store else []) + list(args)
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def valid(store, path):
    cmd = ["nix-store"] + (["--store", store] if store else []) + ["--check-validity", path]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def seed(store=None, require_all=False, mirrors=None):
    """Returns (added, already present, left to upstream) counts."""
    mirrors = mirror.bases() if mirrors is None else mirrors
    if not mirrors:
        raise mirror.FetchError(f"no mirror to seed from: set {mirror.ENV}")
    added = present = 0
    left = []
    with tempfile.TemporaryDirectory(prefix="nix-seed.") as tmp:
        for label, sha256, filename in wanted():
            name = store_name(filename)
            expected = nix_store(store, "--print-fixed-path", "sha256", sha256, name)
            if valid(store, expected):
                present += 1
                continue
            path = os.path.join(tmp, name)
            try:
                mirror.fetch(label, sha256, filename, [], path, mirrors=mirrors)
            except mirror.NotFound as e:
                if require_all:
                    raise
                print(f"nix_seed: {e}; Nix will fetch it upstream", file=sys.stderr)
                left.append(label)
                continue
            got = nix_store(store, "--add-fixed", "sha256", path)
            os.unlink(path)
            if got != expected:
                raise mirror.FetchError(f"{label}: nix-store added {got}, nix/default.nix expects {expected}")
            added += 1
    return added, present, left


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", help="a Nix store other than the default (nix-store --store)")
    ap.add_argument("--require-all", action="store_true",
                    help="fail unless the mirrors have every file (an offline rebuild)")
    args = ap.parse_args(argv)
    try:
        added, present, left = seed(args.store, args.require_all)
    except (mirror.FetchError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or ""
        print(f"nix_seed: {e}{': ' + detail.strip() if detail else ''}", file=sys.stderr)
        return 1
    print(f"nix_seed: {added} added from the mirror, {present} already in the store, "
          f"{len(left)} left to upstream")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
