"""Fills the content-addressed wheelhouse with exactly the wheels a lock pins.

Run by the `wheelhouse` repository rule (and by its tests) on the bootstrap
interpreter:

  wheelhouse.py --lock requirements_lock.txt --wheelhouse DIR --out REPO

Wheels live in DIR/sha256/<hash>/<file>.whl, so a lock only ever finds the
bytes it names, and a second clean build needs no network. Missing wheels come
from the input mirrors in VEID_MIRRORS first (by the sha256 and file name
--files, wheels.lock.json, names; a wrong file there stops the build), else
are fetched by pip, run from a throw-away venv with the host's pip configuration
and site-packages shut out, with --require-hashes --no-deps
--only-binary=:all:. Every wheel is hashed again before REPO/wheels/ links it.
rules_python's pip_parse then installs @pypi from REPO/wheels/ alone
(--no-index --find-links), checking the lock's hashes once more.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import venv

# third_party/mirror/mirror.py; PYTHONSAFEPATH (set for Bazel) keeps it off sys.path.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mirror"))
import mirror  # noqa: E402  pylint: disable=wrong-import-position

_PIP_SETTINGS = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
    "PYTHONNOUSERSITE": "1",
}


def pip_env():
    """The caller's environment minus every pip setting but the CA bundle.

    PIP_FIND_LINKS, PIP_INDEX_URL, PIP_CONSTRAINT and friends would change
    what pip looks at; PIP_CERT only tells it whom to trust for TLS, and the
    lock's hashes decide what is accepted anyway. PYTHONPATH and PYTHONHOME
    (a py_binary's launcher sets them) would replace the venv's own pip.
    """
    env = {k: v for k, v in os.environ.items()
           if (not k.startswith("PIP_") or k == "PIP_CERT") and k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(_PIP_SETTINGS)
    return env


_HASH_PREFIX = "--hash=sha256:"


class LockError(Exception):
    pass


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(path):
    """Returns [(name, version, [sha256, ...])] in lock order."""
    entries = []
    with open(path) as f:
        text = f.read().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        spec, *options = line.split()
        if "==" not in spec:
            raise LockError(f"{path}: '{spec}' is not pinned with '=='")
        name, version = spec.split("==", 1)
        name = name.split("[", 1)[0]
        hashes = [o[len(_HASH_PREFIX):] for o in options if o.startswith(_HASH_PREFIX)]
        if not hashes:
            raise LockError(f"{path}: {spec} has no --hash=sha256: pin")
        entries.append((canonical(name), version, hashes))
    if not entries:
        raise LockError(f"{path}: no requirements")
    return entries


def make_pip(workdir):
    """A venv whose pip sees neither the host's config nor its packages."""
    env_dir = os.path.join(workdir, "venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    return os.path.join(env_dir, "bin", "python")


def supported_tags(pip_python):
    out = subprocess.run(
        [pip_python, "-c",
         "from pip._vendor.packaging import tags\n"
         "print('\\n'.join(str(t) for t in tags.sys_tags()))"],
        check=True, capture_output=True, text=True, env=pip_env())
    return set(out.stdout.split())


def wheel_tags(filename):
    # name-version(-build)?-py-abi-plat.whl; each part may be a '.'-joined set.
    py, abi, plat = filename[:-len(".whl")].split("-")[-3:]
    return {f"{p}-{a}-{q}" for p in py.split(".") for a in abi.split(".") for q in plat.split(".")}


def find_cached(wheelhouse, hashes, tags):
    for digest in hashes:
        folder = os.path.join(wheelhouse, "sha256", digest)
        if not os.path.isdir(folder):
            continue
        for filename in sorted(os.listdir(folder)):
            if not filename.endswith(".whl") or not wheel_tags(filename) & tags:
                continue
            path = os.path.join(folder, filename)
            if mirror.sha256_file(path) == digest:
                return path, digest
            print(f"wheelhouse: {path} is corrupt (hash differs from its name); refetching",
                  file=sys.stderr)
            os.unlink(path)
    return None


def download(pip_python, missing, wheelhouse, workdir, pip_args):
    """Fetches the missing wheels; pip itself checks them against the lock."""
    req = os.path.join(workdir, "missing.txt")
    with open(req, "w") as f:
        for name, version, hashes in missing:
            f.write(f"{name}=={version} " + " ".join(_HASH_PREFIX + h for h in hashes) + "\n")
    # Beside its final place, so that moving a verified wheel in is atomic.
    os.makedirs(wheelhouse, exist_ok=True)
    dest = tempfile.mkdtemp(prefix="download.", dir=wheelhouse)
    try:
        cmd = [pip_python, "-m", "pip", "download", "--require-hashes", "--no-deps",
               "--only-binary=:all:", "--dest", dest, "-r", req, *pip_args]
        proc = subprocess.run(cmd, env=pip_env(), capture_output=True, text=True)
        if proc.returncode != 0:
            names = ", ".join(f"{n}=={v}" for n, v, _ in missing)
            raise LockError(
                f"pip could not fetch wheels matching the lock's hashes for: {names}\n"
                f"{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
        by_hash = {h: (n, v) for n, v, hashes in missing for h in hashes}
        for filename in os.listdir(dest):
            path = os.path.join(dest, filename)
            digest = mirror.sha256_file(path)
            if digest not in by_hash:
                raise LockError(f"pip returned {filename} with sha256 {digest}, which the lock does not pin")
            folder = os.path.join(wheelhouse, "sha256", digest)
            os.makedirs(folder, exist_ok=True)
            os.replace(path, os.path.join(folder, filename))
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def load_files(path):
    """{name: (file name, sha256)} from wheels.lock.json (tools/wheel_urls.py)."""
    if not path:
        return {}
    with open(path, encoding="utf-8") as f:
        return {w["name"]: (w["filename"], w["sha256"]) for w in json.load(f)["wheels"]}


def from_mirrors(missing, files, wheelhouse):
    """Fetches what the input mirrors have (VEID_MIRRORS); returns what is still missing.

    A mirror is addressed by sha256 and file name, which wheels.lock.json
    gives; a wheel it does not name, or no mirror has, is left to pip.
    """
    mirrors = mirror.bases()
    if not mirrors:
        return missing
    left = []
    for name, version, hashes in missing:
        filename, digest = files.get(name, (None, None))
        if digest not in hashes:
            left.append((name, version, hashes))
            continue
        dest = os.path.join(wheelhouse, "sha256", digest, filename)
        try:
            mirror.fetch(f"{name}=={version}", digest, filename, [], dest, mirrors=mirrors)
        except mirror.NotFound as e:
            print(f"wheelhouse: {e}; asking PyPI", file=sys.stderr)
            left.append((name, version, hashes))
        except mirror.FetchError as e:
            raise LockError(str(e)) from e
    return left


def resolve(entries, wheelhouse, pip_python, workdir, pip_args, files=None):
    tags = supported_tags(pip_python)
    found, missing = {}, []
    for name, version, hashes in entries:
        hit = find_cached(wheelhouse, hashes, tags)
        if hit:
            found[name] = hit
        else:
            missing.append((name, version, hashes))
    if missing:
        for_pip = from_mirrors(missing, files or {}, wheelhouse)
        if for_pip:
            download(pip_python, for_pip, wheelhouse, workdir, pip_args)
        for name, version, hashes in missing:
            hit = find_cached(wheelhouse, hashes, tags)
            if not hit:
                raise LockError(f"{name}=={version}: no wheel for this platform matches the lock's hashes")
            found[name] = hit
    return found


_BUILD = """\
# Generated by //third_party/pip:wheelhouse.py from the lock. Do not edit.
package(default_visibility = ["//visibility:public"])

exports_files(["wheels.json"])

# Every verified wheel of the lock: what pip_parse installs @pypi from, and
# what the image ships.
filegroup(
    name = "wheels",
    srcs = glob(["wheels/*.whl"]),
)
"""

# Loaded by WORKSPACE: pip_parse's pip needs an absolute --find-links.
_DEFS = """\
# Generated by //third_party/pip:wheelhouse.py. Do not edit.
FIND_LINKS = "{wheels}"
"""


def write_repo(out, entries, found):
    """wheels/ (one verified wheel per entry, nothing else), BUILD, defs.bzl, wheels.json."""
    wheels = os.path.join(out, "wheels")
    shutil.rmtree(wheels, ignore_errors=True)
    os.makedirs(wheels)
    for name, _, _ in entries:
        wheel = found[name][0]
        os.symlink(wheel, os.path.join(wheels, os.path.basename(wheel)))
    with open(os.path.join(out, "BUILD.bazel"), "w") as f:
        f.write(_BUILD)
    with open(os.path.join(out, "defs.bzl"), "w") as f:
        f.write(_DEFS.format(wheels=wheels))
    manifest = {name: {"version": version, "wheel": os.path.basename(found[name][0]),
                       "sha256": found[name][1]}
                for name, version, _ in entries}
    with open(os.path.join(out, "wheels.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


def fill(lock, wheelhouse, out, pip_args=(), files=None):
    entries = parse_lock(lock)
    with tempfile.TemporaryDirectory(prefix="wheelhouse.") as workdir:
        pip_python = make_pip(workdir)
        found = resolve(entries, wheelhouse, pip_python, workdir, list(pip_args), load_files(files))
    write_repo(out, entries, found)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", required=True)
    parser.add_argument("--wheelhouse", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--files", help="wheels.lock.json: the file name of each wheel, for mirrors")
    parser.add_argument("--pip-arg", action="append", default=[],
                        help="extra argument for `pip download` (tests: --no-index, --find-links)")
    args = parser.parse_args(argv)
    try:
        fill(args.lock, os.path.abspath(args.wheelhouse), os.path.abspath(args.out), args.pip_arg, args.files)
    except LockError as e:
        print(f"wheelhouse: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
