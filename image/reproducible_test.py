"""Two more builds of the image, unlike Bazel's and each other's in every way
the builder's machine can differ, give Bazel's digest.

Each run copies the inputs into a fresh tree under its own umask (022: files
0644, dirs 0755; 077: files 0600, dirs 0700), then varies modes further the
way checkouts and build tools do (group-writable or read-only files,
executable modules, odd directory modes; never a model file's x bit, which
the recipe keeps), and sets its own mtimes. The builds run in different
directories, time zones and locales: one in the C locale with Python's
locale coercion and UTF-8 mode off, so its default text encoding (and file
system encoding) is ASCII, the other in C.UTF-8, where it is UTF-8; the
sources hold non-ASCII text, so a recipe step that decoded or named them by
the locale's encoding would fail or differ. Only what image/image.json and
the pinned inputs say may reach the digest.
"""

import glob
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

_BUILD = os.path.join("image", "build.py")
_SOURCES = ["image/image.json", "image/build.py", "image/assemble.py", "image/sbom.py", "image/sbom_licenses.json",
            "third_party/debian/deb.py", "third_party/debian/packages.lock.json", "third_party/pip/wheels.lock.json",
            "sidecar", "models/trust_score", "models/plan.json"]
_RUNS = [
    {"umask": 0o022, "mtime": 0,
     "env": {"TZ": "UTC", "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"},
     # (path prefix, file mode, dir mode) in order, the first match wins; None: as the umask left it.
     "modes": [("sidecar", 0o775, 0o2775), ("models/trust_score/variables", 0o664, 0o775),
               ("models/plan.json", 0o444, None), ("", None, None)]},
    {"umask": 0o077, "mtime": 1234567890,
     "env": {"TZ": "America/St_Johns", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
     "modes": [("sidecar", 0o700, 0o711), ("models/trust_score/variables", 0o400, 0o700),
               ("models/trust_score", 0o640, 0o750), ("", None, None)]},
]
# What each run's interpreter takes as the default text encoding: the locale axis is not inert.
_PREFERRED_ENCODING = ["ANSI_X3.4-1968", "UTF-8"]


def bazel_digest():
    with open(os.path.join("image", "image.digest")) as f:
        return f.read().strip()


def inputs(pattern):
    found = sorted(glob.glob(pattern))
    assert found, f"no inputs match {pattern}"
    return found


def copy_tree(dst, run):
    """The sources, dereferenced (runfiles are symlinks), created under the run's
    umask, then given the run's modes and mtime."""
    previous = os.umask(run["umask"])
    try:
        # Not copytree, which gives directories the source's modes.
        for rel in _SOURCES:
            files = [rel] if os.path.isfile(rel) else [
                os.path.join(dirpath, name) for dirpath, _, names in os.walk(rel, followlinks=True) for name in names]
            for path in files:
                os.makedirs(os.path.dirname(os.path.join(dst, path)), exist_ok=True)
                shutil.copyfile(path, os.path.join(dst, path))
    finally:
        os.umask(previous)
    paths = []
    for dirpath, dirnames, filenames in os.walk(dst):
        paths += [os.path.join(dirpath, name) for name in dirnames + filenames]
    for path in sorted(paths, reverse=True):  # a directory after what it holds
        rel = os.path.relpath(path, dst)
        file_mode, dir_mode = next((f, d) for prefix, f, d in run["modes"] if rel.startswith(prefix))
        mode = dir_mode if os.path.isdir(path) else file_mode
        if mode is not None:
            os.chmod(path, mode)
        os.utime(path, (run["mtime"], run["mtime"]))
    return {os.path.relpath(p, dst): stat.S_IMODE(os.stat(p).st_mode) for p in paths}


def build(tmp, run):
    repo = os.path.join(tmp, "repo")
    modes = copy_tree(repo, run)
    stubs = []
    for stub in inputs("proto/inference/v1/inference_pb2*.py"):
        stubs.append(shutil.copy(stub, tmp))
    extra = os.path.join(tmp, "inputs")
    os.makedirs(extra)
    debs = [shutil.copy(d, extra) for d in inputs(os.path.join(os.environ["TEST_SRCDIR"], "debian", "debs", "*.deb"))]
    wheels = [shutil.copy(w, extra) for w in inputs(os.path.join(os.environ["TEST_SRCDIR"], "wheelhouse", "wheels", "*.whl"))]
    for path in stubs + debs + wheels:
        os.utime(path, (run["mtime"], run["mtime"]))
    python = [sys.executable] + (["-S"] if sys.flags.no_site else [])
    cmd = python + [os.path.join(repo, _BUILD), "--repo", repo]
    cmd += [a for s in stubs for a in ("--stub", s)] + [a for d in debs for a in ("--deb", d)]
    cmd += [a for w in wheels for a in ("--wheel", w)] + ["--out", os.path.join(tmp, "oci")]
    cmd += ["--sbom", os.path.join(tmp, "sbom.spdx.json")]
    env = {k: v for k, v in os.environ.items()
           if k not in ("TZ", "LANG", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONCOERCECLOCALE") and not k.startswith("LC_")}
    env.update(run["env"])
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True,
                          preexec_fn=lambda: os.umask(run["umask"]))
    assert proc.returncode == 0, proc.stderr[-4000:].decode("utf-8", "replace")
    shutil.rmtree(extra)
    encoding = subprocess.run(python + ["-c", "import locale; print(locale.getpreferredencoding(False))"],
                              env=env, capture_output=True, check=True)
    return proc.stdout.decode("ascii").strip().splitlines()[-1], modes, encoding.stdout.decode("ascii").strip()


def read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("run,encoding", zip(_RUNS, _PREFERRED_ENCODING),
                         ids=["umask022-UTC-C", "umask077-St_Johns-C.UTF-8"])
def test_rebuild_gives_bazels_digest_and_sbom(tmp_path, run, encoding):
    digest, modes, preferred = build(str(tmp_path), run)
    # The axes are real: this run's tree has its umask's and its own modes, its
    # interpreter its locale's encoding.
    assert modes["models/trust_score/saved_model.pb"] == (0o644 if run["umask"] == 0o022 else 0o640), modes
    assert modes["sidecar/main.py"] == run["modes"][0][1], modes
    assert preferred == encoding
    assert digest == bazel_digest()
    # The same SBOM, so the same referrer beside the image.
    assert read(tmp_path / "sbom.spdx.json") == read(os.path.join("image", "sbom.spdx.json"))
    assert read(tmp_path / "oci" / "index.json") == read(os.path.join("image", "image", "index.json"))


def test_skopeo_reads_the_layout_and_agrees_on_the_digest():
    skopeo = shutil.which("skopeo", path="/usr/bin:/bin")
    assert skopeo, "skopeo is missing: apt-get install skopeo (./bazelw installs it)"
    proc = subprocess.run([skopeo, "inspect", f"oci:{os.path.join('image', 'image')}:latest"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Digest"] == bazel_digest()


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
