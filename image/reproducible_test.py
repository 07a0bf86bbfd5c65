"""Two more builds of the image, unlike Bazel's and each other's in every way
the builder's machine can differ, give Bazel's digest.

The inputs are copied into two fresh trees with different mtimes; the builds
run in different directories under umask 022 and 077, in different time zones
and locales. Only what image/image.json and the pinned inputs say may reach the
digest.
"""

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

_BUILD = os.path.join("image", "build.py")
_SOURCES = ["image/image.json", "image/build.py", "image/assemble.py", "image/sbom.py", "image/sbom_licenses.json",
            "third_party/debian/deb.py", "third_party/debian/packages.lock.json", "third_party/pip/wheels.lock.json",
            "sidecar", "models/trust_score", "models/plan.json"]
_RUNS = [
    {"umask": 0o022, "mtime": 0, "env": {"TZ": "UTC", "LC_ALL": "C"}},
    {"umask": 0o077, "mtime": 1234567890, "env": {"TZ": "America/St_Johns", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}},
]


def bazel_digest():
    with open(os.path.join("image", "image.digest")) as f:
        return f.read().strip()


def inputs(pattern):
    found = sorted(glob.glob(pattern))
    assert found, f"no inputs match {pattern}"
    return found


def copy_tree(dst, mtime):
    """The sources, dereferenced (runfiles are symlinks), every mtime set to `mtime`."""
    for rel in _SOURCES:
        if os.path.isdir(rel):
            shutil.copytree(rel, os.path.join(dst, rel), symlinks=False)
        else:
            os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
            shutil.copyfile(rel, os.path.join(dst, rel))
    for dirpath, dirnames, filenames in os.walk(dst):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime))


def build(tmp, run):
    repo = os.path.join(tmp, "repo")
    copy_tree(repo, run["mtime"])
    stubs = []
    for stub in inputs("proto/inference/v1/inference_pb2*.py"):
        stubs.append(shutil.copy(stub, tmp))
    extra = os.path.join(tmp, "inputs")
    os.makedirs(extra)
    debs = [shutil.copy(d, extra) for d in inputs(os.path.join(os.environ["TEST_SRCDIR"], "debian", "debs", "*.deb"))]
    wheels = [shutil.copy(w, extra) for w in inputs(os.path.join(os.environ["TEST_SRCDIR"], "wheelhouse", "wheels", "*.whl"))]
    for path in stubs + debs + wheels:
        os.utime(path, (run["mtime"], run["mtime"]))
    cmd = [sys.executable] + (["-S"] if sys.flags.no_site else []) + [os.path.join(repo, _BUILD), "--repo", repo]
    cmd += [a for s in stubs for a in ("--stub", s)] + [a for d in debs for a in ("--deb", d)]
    cmd += [a for w in wheels for a in ("--wheel", w)] + ["--out", os.path.join(tmp, "oci")]
    cmd += ["--sbom", os.path.join(tmp, "sbom.spdx.json")]
    env = {k: v for k, v in os.environ.items() if k not in ("TZ", "LC_ALL", "LANG")}
    env.update(run["env"])
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True,
                          preexec_fn=lambda: os.umask(run["umask"]))
    assert proc.returncode == 0, proc.stderr[-4000:]
    shutil.rmtree(extra)
    return proc.stdout.strip().splitlines()[-1]


def read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("run", _RUNS, ids=["umask022-UTC", "umask077-St_Johns"])
def test_rebuild_gives_bazels_digest_and_sbom(tmp_path, run):
    assert build(str(tmp_path), run) == bazel_digest()
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
