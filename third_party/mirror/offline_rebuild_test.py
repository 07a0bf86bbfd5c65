"""A validator a year from now: the image rebuilt from the input mirror alone.

Writes the mirror (`bazel run //image:mirror`'s program) from this build's
caches, then, with the network cut (a network namespace with only loopback)
and every cache empty, builds the image from a copy of the source tree
  * with Bazel: a new output base, an empty repository cache, wheelhouse and
    deb cache, VEID_MIRRORS naming the mirror directory;
  * with Nix: a new store (`--store`), seeded from the mirror by
    nix_seed.py, `nix build` of the flake;
and both must give image/DIGEST (and image/SBOM_DIGEST). A mirror with one flipped byte in a `.deb`
stops the Nix seeding, and one in an archive Bazel's downloader fetches
(grpcurl) stops the Bazel fetch, each naming the package.

Runs outside the sandbox (nested Bazel, Nix, network namespaces need root)
and alone: it rebuilds the whole image twice.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from image import assemble
from image import sbom

_RUNFILES = os.path.join(os.environ["TEST_SRCDIR"], "veid_sidecar")
_HERE = os.path.join(_RUNFILES, "third_party", "mirror")
_DIGEST = os.path.join(_RUNFILES, "image", "DIGEST")
_SBOM_DIGEST = os.path.join(_RUNFILES, "image", "SBOM_DIGEST")
_IMAGE_JSON = os.path.join(_RUNFILES, "image", "image.json")
_NIX_CONFIG = """experimental-features = nix-command flakes
build-users-group =
substituters =
sandbox = true
sandbox-fallback = false"""


def _offline(cmd):
    """cmd in a new network namespace whose only interface is loopback."""
    return ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "offline"] + cmd


def _source_tree(dest):
    """The checkout's files (tracked and new, not ignored) as they are on disk."""
    root = os.path.dirname(os.path.dirname(os.path.realpath(_DIGEST)))
    names = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = os.path.join(root, name)
        if not os.path.lexists(src):
            continue  # deleted, not yet committed
        os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
        shutil.copy2(src, os.path.join(dest, name), follow_symlinks=False)
    return dest


def _flip(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01
    os.unlink(path)  # a hard link to the good mirror's file
    with open(path, "wb") as f:
        f.write(bytes(data))


def _bad_copy(mirror, dest, index, pick):
    """A hard-linked copy of the mirror with one byte flipped in the file pick() selects."""
    shutil.copytree(mirror, dest, copy_function=os.link)
    entry = next(e for e in index["files"] if pick(e))
    _flip(os.path.join(dest, "sha256", entry["sha256"], entry["filename"]))
    return entry


def _rmtree(path):
    subprocess.run(["chmod", "-R", "u+w", path], check=False)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def work():
    for tool in ("bazel", "nix", "unshare", "ip", "git"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (tools/host_packages.txt)")
    tmp = tempfile.mkdtemp(prefix="veid-offline-", dir="/tmp")  # short: Bazel's socket path
    yield tmp
    _rmtree(tmp)


@pytest.fixture(scope="module")
def mirror(work):
    out = os.path.join(work, "mirror")
    start = time.monotonic()
    subprocess.run([sys.executable, "-S", os.path.join(_HERE, "write.py"), out,
                    "--archives", os.path.join(_HERE, "archives.json")], check=True)
    with open(os.path.join(out, "index.json"), encoding="utf-8") as f:
        index = json.load(f)
    size = sum(e["size"] for e in index["files"])
    print(f"mirror: {len(index['files'])} files, {size:,} bytes, written in {time.monotonic() - start:.1f} s")
    return out, index


def _expected(path=_DIGEST):
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def _sbom_referrer(layout, image_digest):
    """The digest of the SBOM artifact manifest a layout lists for its image."""
    (desc,) = assemble.referrers(layout, image_digest, sbom.MEDIA_TYPE)
    return desc["digest"]


def _env(work, mirrors):
    home = os.path.join(work, "home")
    os.makedirs(home, exist_ok=True)
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "NIX_CONFIG": _NIX_CONFIG,
        "VEID_MIRRORS": mirrors,
        "VEID_WHEELHOUSE": os.path.join(work, "wheelhouse"),
        "VEID_DEB_CACHE": os.path.join(work, "debs"),
    }


_REPO_ENV = ("VEID_MIRRORS", "VEID_WHEELHOUSE", "VEID_DEB_CACHE")


def _bazel(work, src, env, *args):
    """Bazel in batch mode (no server outliving the namespace) on its own output root.

    The VEID_* settings reach it only as --repo_env, as a user.bazelrc would pass them.
    """
    repo_env = [f"--repo_env={k}={env[k]}" for k in _REPO_ENV]
    command, rest = args[0], list(args[1:])
    cmd = ["bazel", "--batch", f"--output_user_root={os.path.join(work, 'bazel')}", command,
           f"--repository_cache={env['REPOSITORY_CACHE']}", *repo_env, *rest]
    client_env = {k: v for k, v in env.items() if k not in _REPO_ENV}
    return subprocess.Popen(_offline(cmd), cwd=src, env=client_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_offline_rebuild_from_the_mirror_gives_the_digest(work, mirror):
    mirror_dir, index = mirror
    src = _source_tree(os.path.join(work, "src"))
    env = _env(work, mirror_dir)
    env["REPOSITORY_CACHE"] = os.path.join(work, "repository-cache")
    store = os.path.join(work, "nix-store")

    start = time.monotonic()
    bazel = _bazel(work, src, env, "build", "--color=no", "--curses=no", "//image")
    seed = subprocess.run(_offline([sys.executable, "-S", os.path.join(_HERE, "nix_seed.py"), "--store", store,
                                    "--require-all"]), env=env, capture_output=True, text=True)
    assert seed.returncode == 0, seed.stderr
    nix = subprocess.run(_offline(["nix", "build", "--store", store, "--no-link", "--json",
                                   f"path:{src}"]), env=env, capture_output=True, text=True)
    nix_seconds = time.monotonic() - start
    assert nix.returncode == 0, nix.stderr[-6000:]
    out_path = json.loads(nix.stdout)[0]["outputs"]["out"]
    with open(store + out_path + "/image.digest", encoding="ascii") as f:
        nix_digest = f.read().strip()
    bazel_log, _ = bazel.communicate()
    bazel_seconds = time.monotonic() - start
    assert bazel.returncode == 0, bazel_log[-6000:]
    with open(os.path.join(src, "bazel-bin", "image", "image.digest"), encoding="ascii") as f:
        bazel_digest = f.read().strip()
    print(f"offline from the mirror: {seed.stdout.strip()}; nix {nix_seconds:.0f} s -> {nix_digest}; "
          f"bazel {bazel_seconds:.0f} s (both at once on this machine) -> {bazel_digest}")
    assert nix_digest == _expected()
    assert bazel_digest == _expected()
    # And the same SBOM beside it.
    assert _sbom_referrer(store + out_path + "/image", nix_digest) == _expected(_SBOM_DIGEST)
    assert _sbom_referrer(os.path.join(src, "bazel-bin", "image", "image"), bazel_digest) == _expected(_SBOM_DIGEST)

    # Nothing was taken from outside: the caches the build filled hold exactly
    # what the mirror served.
    wheels = {e["sha256"] for e in index["files"] if e["kind"] == "wheel"}
    debs = {e["sha256"] for e in index["files"] if e["kind"] == "deb"}
    with open(_IMAGE_JSON, encoding="utf-8") as f:
        runtime = {sbom.canonical(name) for name in json.load(f)["python_runtime"]}
    # At least the wheels the image's python layer was built from.
    image_wheels = {e["sha256"] for e in index["files"]
                    if e["kind"] == "wheel" and sbom.canonical(e["name"]) in runtime}
    assert len(image_wheels) == len(runtime), sorted(runtime)
    assert image_wheels <= _cached(env["VEID_WHEELHOUSE"]) <= wheels
    assert _cached(env["VEID_DEB_CACHE"]) == debs


def _cached(cache):
    """The hashes a content-addressed cache holds (none when the build never made it)."""
    by_hash = os.path.join(cache, "sha256")
    return set(os.listdir(by_hash)) if os.path.isdir(by_hash) else set()


def test_flipped_byte_in_the_mirror_stops_nix_seeding(work, mirror):
    mirror_dir, index = mirror
    bad = _bad_copy(mirror_dir, os.path.join(work, "bad-mirror-nix"), index, lambda e: e["name"] == "libc6")
    env = _env(work, os.path.join(work, "bad-mirror-nix"))
    proc = subprocess.run(_offline([sys.executable, "-S", os.path.join(_HERE, "nix_seed.py"), "--require-all",
                                    "--store", os.path.join(work, "nix-store-bad")]),
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"libc6 {bad['version']} (deb)" in proc.stderr and "not the pinned file" in proc.stderr, proc.stderr


def test_flipped_byte_in_the_mirror_stops_bazel(work, mirror):
    mirror_dir, index = mirror
    bad_dir = os.path.join(work, "bad-mirror-bazel")
    _bad_copy(mirror_dir, bad_dir, index, lambda e: e["name"] == "grpcurl")
    src = os.path.join(work, "src")
    # The output base of the rebuild above, so that only @grpcurl is fetched,
    # from an empty repository cache, offline.
    env = _env(work, bad_dir)
    env["REPOSITORY_CACHE"] = os.path.join(work, "repository-cache-grpcurl")
    proc = _bazel(work, src, env, "fetch", "@grpcurl//...")
    out, _ = proc.communicate()
    assert proc.returncode != 0, out[-4000:]
    assert "fetch of repository 'grpcurl'" in out and "Checksum was" in out, out[-4000:]

    env["VEID_MIRRORS"] = mirror_dir
    proc = _bazel(work, src, env, "fetch", "@grpcurl//...")
    out, _ = proc.communicate()
    assert proc.returncode == 0, out[-4000:]


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v", "-s"]))
