"""Installs a hash-pinned requirements lock as one directory per distribution.

Run by the `pip_lock` repository rule (and by its tests) with the toolchain
interpreter:

  install_lock.py --lock requirements_lock.txt --wheelhouse DIR --out REPO

Wheels live in a content-addressed wheelhouse, DIR/sha256/<hash>/<file>.whl,
so a lock only ever finds the bytes it names, and a second clean build needs no
network. Missing wheels are fetched by pip, run from a throw-away venv with
the host's pip configuration and site-packages shut out, with
--require-hashes --no-deps --only-binary=:all:. Every wheel is hashed again
before it is unpacked.
"""

import argparse
import compileall
import email.parser
import hashlib
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import venv
import zipfile

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
    lock's hashes decide what is accepted anyway.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env.update(_PIP_SETTINGS)
    return env
_HASH_PREFIX = "--hash=sha256:"


class LockError(Exception):
    pass


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def target_name(name):
    return canonical(name).replace("-", "_")


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


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
            if sha256_of(path) == digest:
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
            digest = sha256_of(path)
            if digest not in by_hash:
                raise LockError(f"pip returned {filename} with sha256 {digest}, which the lock does not pin")
            folder = os.path.join(wheelhouse, "sha256", digest)
            os.makedirs(folder, exist_ok=True)
            os.replace(path, os.path.join(folder, filename))
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def resolve(entries, wheelhouse, pip_python, workdir, pip_args):
    tags = supported_tags(pip_python)
    found, missing = {}, []
    for name, version, hashes in entries:
        hit = find_cached(wheelhouse, hashes, tags)
        if hit:
            found[name] = hit
        else:
            missing.append((name, version, hashes))
    if missing:
        download(pip_python, missing, wheelhouse, workdir, pip_args)
        for name, version, hashes in missing:
            hit = find_cached(wheelhouse, hashes, tags)
            if not hit:
                raise LockError(f"{name}=={version}: no wheel for this platform matches the lock's hashes")
            found[name] = hit
    return found


def unpack(wheel, dest):
    """Unpacks a wheel the way an installer lays out purelib/platlib."""
    skipped = []
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            path = info.filename
            if info.is_dir():
                continue
            parts = path.split("/")
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    skipped.append(path)  # scripts, headers, data: not importable
                    continue
                parts = parts[2:]
            rel = "/".join(parts)
            if " " in rel or ".." in parts or rel.startswith("/"):
                skipped.append(path)  # Bazel 4 runfiles cannot carry spaces
                continue
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(target, 0o755 if mode & 0o111 else 0o644)
    return skipped


def compile_bytecode(dist_dir):
    """Precompiles the distribution so no test process recompiles TensorFlow.

    The toolchain runs with -B and runfiles are read-only, so without this
    every process that imports TF compiles its Python sources again (13.5
    instead of 5 CPU-seconds, far more under qemu). unchecked-hash .pyc files
    ignore mtimes, which runfiles symlinks do not preserve. Files that do not
    compile (Python 2 leftovers in some wheels) simply stay uncompiled.
    """
    compileall.compile_dir(dist_dir, quiet=2, workers=0,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)


def requires(dist_dir, name):
    """Names of this distribution's runtime requirements (markers evaluated)."""
    info = [d for d in os.listdir(dist_dir) if d.endswith(".dist-info")]
    if len(info) != 1:
        raise LockError(f"{name}: expected one .dist-info, found {info}")
    with open(os.path.join(dist_dir, info[0], "METADATA"), encoding="utf-8") as f:
        meta = email.parser.Parser().parse(f, headersonly=True)
    return meta.get_all("Requires-Dist") or []


def evaluate_requirements(pip_python, raw):
    """Maps {dist: [Requires-Dist strings]} to {dist: [canonical names]} with pip's packaging."""
    code = (
        "import json, sys\n"
        "from pip._vendor.packaging.requirements import Requirement\n"
        "from pip._vendor.packaging.utils import canonicalize_name\n"
        "out = {}\n"
        "for dist, reqs in json.load(sys.stdin).items():\n"
        "    keep = []\n"
        "    for r in map(Requirement, reqs):\n"
        "        if r.marker is None or r.marker.evaluate({'extra': ''}):\n"
        "            keep.append(canonicalize_name(r.name))\n"
        "    out[dist] = sorted(set(keep))\n"
        "json.dump(out, sys.stdout)\n")
    proc = subprocess.run([pip_python, "-c", code], input=json.dumps(raw), check=True,
                          capture_output=True, text=True, env=pip_env())
    return json.loads(proc.stdout)


_LIBRARY = """
py_library(
    name = "{target}",
    data = glob(["site/{target}/**"]),
    imports = ["site/{target}"],
    deps = [{deps}],
)
"""

# The verified wheel itself, for tests of the install logic.
_WHEEL = """
filegroup(
    name = "{target}_wheel",
    srcs = ["wheels/{file}"],
)
"""


def write_repo(out, entries, found, deps):
    lines = ['# Generated by //third_party/pip:install_lock.py from the lock. Do not edit.',
             'package(default_visibility = ["//visibility:public"])',
             'exports_files(["installed.json"])',
             '',
             '# Every verified wheel of the lock, e.g. for the image.',
             'filegroup(',
             '    name = "wheels",',
             '    srcs = glob(["wheels/*.whl"]),',
             ')']
    for name, version, _ in entries:
        dep_labels = ", ".join(f'":{target_name(d)}"' for d in deps[name])
        lines.append(_LIBRARY.format(target=target_name(name), deps=dep_labels).rstrip())
    wheels = os.path.join(out, "wheels")
    shutil.rmtree(wheels, ignore_errors=True)
    os.makedirs(wheels)
    for name, _, _ in entries:
        wheel = found[name][0]
        os.symlink(wheel, os.path.join(wheels, os.path.basename(wheel)))
        lines.append(_WHEEL.format(target=target_name(name), file=os.path.basename(wheel)).rstrip())
    with open(os.path.join(out, "BUILD.bazel"), "w") as f:
        f.write("\n".join(lines) + "\n")
    manifest = {name: {"version": version, "wheel": os.path.basename(found[name][0]),
                       "sha256": found[name][1], "requires": deps[name]}
                for name, version, _ in entries}
    with open(os.path.join(out, "installed.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


def install(lock, wheelhouse, out, pip_args=()):
    entries = parse_lock(lock)
    names = {name for name, _, _ in entries}
    with tempfile.TemporaryDirectory(prefix="install_lock.") as workdir:
        pip_python = make_pip(workdir)
        found = resolve(entries, wheelhouse, pip_python, workdir, list(pip_args))
        site = os.path.join(out, "site")
        if os.path.isdir(site):
            shutil.rmtree(site)
        raw = {}
        for name, version, _ in entries:
            dist_dir = os.path.join(site, target_name(name))
            skipped = unpack(found[name][0], dist_dir)
            if skipped:
                print(f"{name}: not installed (not importable or not representable): "
                      f"{len(skipped)} files, e.g. {skipped[0]}", file=sys.stderr)
            raw[name] = requires(dist_dir, name)
            compile_bytecode(dist_dir)
        deps = evaluate_requirements(pip_python, raw)
    for name, needed in deps.items():
        absent = [d for d in needed if d not in names]
        if absent:
            raise LockError(f"the lock is incomplete: {name} requires {', '.join(absent)}")
    write_repo(out, entries, found, deps)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", required=True)
    parser.add_argument("--wheelhouse", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--pip-arg", action="append", default=[],
                        help="extra argument for `pip download` (tests: --no-index, --find-links)")
    args = parser.parse_args(argv)
    try:
        install(args.lock, os.path.abspath(args.wheelhouse), os.path.abspath(args.out), args.pip_arg)
    except LockError as e:
        print(f"install_lock: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
