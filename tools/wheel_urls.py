#!/usr/bin/env python3
"""Writes third_party/pip/wheels.lock.json: the file and URL of every locked wheel.

    python3 tools/wheel_urls.py          # rewrite the lock (asks PyPI)
    python3 tools/wheel_urls.py --check  # offline: the lock agrees with requirements_lock.txt

requirements_lock.txt pins every distribution by sha256 but names no files or
URLs, and a Nix fixed-output fetch and the input mirror need both. Each
entry's `used_by` says who needs it: "image" (image/image.json
`python_runtime`), "protoc" (grpcio-tools and its requirements, read from the
lock's `# via` notes, i.e. pip-compile's own graph; Nix fetches these two) or
"bazel" (the rest, for tests and tools). For every distribution this picks
the wheel pip would install for the image's interpreter: CPython 3.11 on x86_64 glibc, the glibc version being
that of the libc6 .deb in third_party/debian/packages.lock.json (not the
host's). Among the files whose sha256 the lock allows, the most specific
supported tag wins, in pip's (packaging.tags) order. Bazel's wheelhouse
(~/.cache/veid-sidecar/wheelhouse/sha256/<sha256>/<file>), filled by pip, is
compared when it exists.

Files and URLs come from PyPI's simple JSON API (PEP 691, what pip reads);
its URLs are absolute files.pythonhosted.org addresses. Stdlib only; no PIP_*
setting is read, so a developer's index or find-links cannot leak in.
"""

import argparse
import json
import os
import re
import sys
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIREMENTS = os.path.join(ROOT, "requirements_lock.txt")
IMAGE = os.path.join(ROOT, "image", "image.json")
DEBIAN_LOCK = os.path.join(ROOT, "third_party", "debian", "packages.lock.json")
OUT = os.path.join(ROOT, "third_party", "pip", "wheels.lock.json")
WHEELHOUSE = os.path.join(os.path.expanduser("~"), ".cache", "veid-sidecar", "wheelhouse")
INDEX = "https://pypi.org/simple"
TOOL_ROOTS = ["grpcio-tools"]  # third_party/grpc/protoc.py's only dependency


class LockError(Exception):
    pass


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirements(path):
    """{name: (version, {sha256}, {names it is required by})} from a pip-compile lock."""
    entries, current, in_via = {}, None, False
    with open(path, encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            note = stripped.lstrip("#").strip()
            if current and note.startswith("via"):
                rest = note[3:].strip()
                in_via = not rest
                if rest:
                    entries[current][2].add(canonical(rest))
            elif current and in_via and note and not note.startswith("-r"):
                entries[current][2].add(canonical(note))
            continue
        in_via = False
        if not stripped:
            continue
        spec, *options = stripped.split()
        name, version = spec.split("==", 1)
        current = canonical(name.split("[", 1)[0])
        hashes = {o.split(":", 1)[1] for o in options if o.startswith("--hash=sha256:")}
        entries[current] = (version, hashes, set())
    return entries


def needed(requirements, image):
    """{name: sorted uses}: "image" (the image's runtime set), "protoc" (the stub
    generator's closure), "bazel" (everything else: tests and tools under Bazel,
    listed so that the input mirror can name every wheel's file and URL)."""
    uses = {canonical(n): {"image"} for n in image["python_runtime"]}
    todo = [canonical(n) for n in TOOL_ROOTS]
    seen = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        uses.setdefault(name, set()).add("protoc")
        todo += [dep for dep, (_, _, via) in requirements.items() if name in via]
    missing = sorted(set(uses) - set(requirements))
    if missing:
        raise LockError(f"not in requirements_lock.txt: {missing}")
    for name in requirements:
        uses.setdefault(name, {"bazel"})
    return {name: sorted(u) for name, u in sorted(uses.items())}


def glibc_version(debian_lock):
    """(major, minor) of the image's libc6, e.g. 2.36-9+deb12u14 -> (2, 36)."""
    for entry in debian_lock:
        if entry["name"] == "libc6":
            major, minor = re.match(r"(?:\d+:)?(\d+)\.(\d+)", entry["version"]).groups()
            return int(major), int(minor)
    raise LockError("no libc6 in the Debian lock")


def supported_tags(glibc, py=(3, 11), arch="x86_64"):
    """packaging.tags.sys_tags() for CPython `py` on manylinux `glibc`, best first."""
    platforms = []
    legacy = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
    for minor in range(glibc[1], 4, -1):
        platforms.append(f"manylinux_{glibc[0]}_{minor}_{arch}")
        if (glibc[0], minor) in legacy:
            platforms.append(f"{legacy[(glibc[0], minor)]}_{arch}")
    platforms.append(f"linux_{arch}")
    cp = f"cp{py[0]}{py[1]}"
    tags = [(cp, abi, p) for abi in (cp, "abi3", "none") for p in platforms]
    tags += [(f"cp{py[0]}{m}", "abi3", p) for m in range(py[1] - 1, 1, -1) for p in platforms]
    older = [f"py{py[0]}{m}" for m in range(py[1] - 1, -1, -1)]
    tags += [(i, "none", p) for i in [f"py{py[0]}{py[1]}", f"py{py[0]}"] + older for p in platforms]
    tags += [(i, "none", "any") for i in [cp, f"py{py[0]}{py[1]}", f"py{py[0]}"] + older]
    return {tag: rank for rank, tag in reversed(list(enumerate(tags)))}


def wheel_rank(filename, ranks):
    """Best rank of a wheel's (possibly compressed) tag set; None if unsupported."""
    parts = filename[:-len(".whl")].split("-")
    interpreters, abis, platforms = parts[-3], parts[-2], parts[-1]
    found = [ranks[(i, a, p)] for i in interpreters.split(".") for a in abis.split(".")
             for p in platforms.split(".") if (i, a, p) in ranks]
    return min(found) if found else None


def wheel_version(filename):
    return filename.split("-")[1]


def index_files(name):
    request = urllib.request.Request(f"{INDEX}/{name}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)["files"]


def choose(name, version, hashes, files, ranks):
    candidates = []
    for f in files:
        fn = f["filename"]
        sha = f.get("hashes", {}).get("sha256")
        if not fn.endswith(".whl") or sha not in hashes or wheel_version(fn) != version:
            continue
        rank = wheel_rank(fn, ranks)
        if rank is not None:
            candidates.append((rank, fn, f["url"], sha))
    if not candidates:
        raise LockError(f"{name}=={version}: no wheel for cp311 manylinux x86_64 among the lock's hashes")
    candidates.sort()
    if len(candidates) > 1 and candidates[0][0] == candidates[1][0]:
        raise LockError(f"{name}=={version}: {candidates[0][1]} and {candidates[1][1]} tie")
    _, fn, url, sha = candidates[0]
    if not url.startswith("https://files.pythonhosted.org/packages/") or not url.endswith("/" + fn):
        raise LockError(f"{name}: unexpected URL {url}")
    return {"filename": fn, "name": name, "sha256": sha, "url": url, "version": version}


def load_inputs():
    with open(IMAGE, encoding="utf-8") as f:
        image = json.load(f)
    with open(DEBIAN_LOCK, encoding="utf-8") as f:
        debian = json.load(f)
    requirements = parse_requirements(REQUIREMENTS)
    return requirements, needed(requirements, image), supported_tags(glibc_version(debian))


def generate():
    requirements, uses, ranks = load_inputs()
    entries = []
    for name, used_by in uses.items():
        version, hashes, _ = requirements[name]
        entry = choose(name, version, hashes, index_files(name), ranks)
        entry["used_by"] = used_by
        entries.append(entry)
        print(f"{entry['filename']}", file=sys.stderr)
    return entries


def check(entries):
    """Offline consistency of the lock; returns a list of problems."""
    requirements, uses, ranks = load_inputs()
    problems = []
    names = [e["name"] for e in entries]
    if names != list(uses):
        problems.append(f"distributions {names} != needed {list(uses)}; rerun tools/wheel_urls.py")
    for e in entries:
        version, hashes, _ = requirements.get(e["name"], (None, set(), set()))
        fn = e["filename"]
        if e["version"] != version or wheel_version(fn) != version:
            problems.append(f"{fn}: requirements_lock.txt pins {e['name']}=={version}")
        if canonical(fn.split("-")[0]) != e["name"]:
            problems.append(f"{fn}: not a wheel of {e['name']}")
        if e["sha256"] not in hashes:
            problems.append(f"{fn}: sha256 {e['sha256']} is not among the lock's hashes")
        if wheel_rank(fn, ranks) is None:
            problems.append(f"{fn}: not installable on cp311 manylinux x86_64")
        if not e["url"].startswith("https://files.pythonhosted.org/") or not e["url"].endswith("/" + fn):
            problems.append(f"{fn}: URL {e['url']} does not name the file")
        if e.get("used_by") != uses.get(e["name"]):
            problems.append(f"{fn}: used_by {e.get('used_by')} != {uses.get(e['name'])}")
        # Bazel's wheelhouse holds what pip chose: the same file must be there.
        pip_dir = os.path.join(WHEELHOUSE, "sha256", e["sha256"])
        if os.path.isdir(os.path.join(WHEELHOUSE, "sha256")) and not os.path.exists(os.path.join(pip_dir, fn)):
            problems.append(f"{fn}: not the wheel pip put in {WHEELHOUSE}")
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="verify the lock offline; write nothing")
    args = ap.parse_args(argv)
    try:
        if args.check:
            with open(OUT, encoding="utf-8") as f:
                problems = check(json.load(f)["wheels"])
            for p in problems:
                print(f"wheels.lock.json: {p}", file=sys.stderr)
            return 1 if problems else 0
        lock = {
            "comment": "Generated by tools/wheel_urls.py from requirements_lock.txt and PyPI; "
                       "flake.nix fetches those used_by image or protoc; the input mirror holds all. Do not edit.",
            "wheels": generate(),
        }
    except LockError as e:
        print(f"tools/wheel_urls.py: {e}", file=sys.stderr)
        return 1
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(lock, f, indent=1, sort_keys=True)
        f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
