"""The built image runs: its own entrypoint, as uid 65532, on a read-only root,
with nothing but loopback — and answers byte for byte like the native sidecar.

Needs root (unshare, mount, chroot), so Bazel runs it outside the sandbox. The
whole test re-executes itself in fresh network and mount namespaces: the
network has only `lo`, so the image's own `--grpc-addr=:50051` reaches
nothing but this test. That address is not loopback, so the entrypoint serves
mutual TLS only: the certificates are "mounted" in the image's /tmp, and the
entrypoint alone refuses to start.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc

from image import assemble
from image.engine_fixtures import native  # noqa: F401 (fixture)
from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import committed_model
from ops import dev_certs
from ops import sidecar_process
from sidecar import golden

_LAYOUT = os.path.join("image", "image")
_ISOLATED = "VEID_IMAGE_TEST_ISOLATED"
_NONROOT = 65532
_SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def tool(name):
    path = shutil.which(name, path=_SYSTEM_PATH)
    assert path, f"{name} is needed (util-linux, coreutils, iproute2, umoci)"
    return path


def blob(digest):
    algorithm, hexdigest = digest.split(":", 1)
    return os.path.join(_LAYOUT, "blobs", algorithm, hexdigest)


def image_parts():
    desc = assemble.tagged(assemble.read_index(_LAYOUT))
    with open(blob(desc["digest"])) as f:
        manifest = json.load(f)
    with open(blob(manifest["config"]["digest"])) as f:
        config = json.load(f)["config"]
    return [layer["digest"] for layer in manifest["layers"]], config


def sh(name, *args):
    subprocess.run([tool(name), *args], check=True)


@pytest.fixture(scope="module")
def rootfs():
    _, config = image_parts()
    # umoci, not our own untar: an independent OCI implementation must accept
    # the layout and lay out the same root (owners included: we are root).
    bundle = os.path.join(sidecar_process.tmpdir("image-"), "bundle")
    sh("umoci", "unpack", "--image", f"{_LAYOUT}:latest", bundle)
    root = os.path.join(bundle, "rootfs")
    assert os.stat(os.path.join(root, "home", "nonroot")).st_uid == _NONROOT
    for mountpoint in ("dev", "proc", "tmp"):
        os.makedirs(os.path.join(root, mountpoint), exist_ok=True)
    # Read-only root; the kernel interfaces and a private /tmp on top.
    sh("mount", "--bind", root, root)
    sh("mount", "-o", "remount,bind,ro", root)
    sh("mount", "--rbind", "/dev", os.path.join(root, "dev"))
    sh("mount", "-t", "proc", "proc", os.path.join(root, "proc"))
    sh("mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", os.path.join(root, "tmp"))
    return root, config


@pytest.fixture(scope="module")
def tls(rootfs):
    """Development certificates in the image's /tmp/tls: (sidecar flags, client credentials)."""
    root, _ = rootfs
    certs = dev_certs.make_dev_set(os.path.join(root, "tmp", "tls"))
    os.chown(certs["server_key"], _NONROOT, _NONROOT)
    inside = lambda path: "/" + os.path.relpath(path, root)
    flags = [f"--tls-cert-file={inside(certs['server_cert'])}", f"--tls-key-file={inside(certs['server_key'])}",
             f"--tls-client-ca-file={inside(certs['ca'])}"]
    pem = [open(certs[k], "rb").read() for k in ("ca", "client_key", "client_cert")]
    return flags, grpc.ssl_channel_credentials(*pem)


def image_command(root, config, *args):
    """The image's own entrypoint plus `args`, chrooted as its user: (argv, env)."""
    return ([tool("chroot"), f"--userspec={_NONROOT}:{_NONROOT}", root, *config["Entrypoint"], *args],
            dict(e.split("=", 1) for e in config["Env"]))


def start_image_sidecar(root, config, log_path, tls):
    """The image's own entrypoint with the TLS flags; returns (process, stub, channel) once SERVING."""
    argv, env = image_command(root, config, *tls[0])
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT)
    channel = grpc.secure_channel("127.0.0.1:50051", tls[1])
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + sidecar_process.START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            channel.close()
            pytest.fail(f"image sidecar exited with {proc.returncode}:\n{open(log_path).read()}")
        try:
            if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                break
        except grpc.RpcError:
            pass
        assert time.monotonic() < deadline, open(log_path).read()
        time.sleep(0.5)
    return proc, pb_grpc.InferenceServiceStub(channel), channel


@pytest.fixture(scope="module")
def image_sidecar(rootfs, tls):
    root, config = rootfs
    assert config["User"] == str(_NONROOT)
    log_path = os.path.join(os.path.dirname(root), "sidecar.log")
    proc, stub, channel = start_image_sidecar(root, config, log_path, tls)
    yield proc, stub, log_path
    channel.close()
    if proc.poll() is None:
        proc.kill()


@pytest.fixture(scope="module")
def vectors():
    return golden.load_vectors(committed_model.MODEL_SRC)


def test_runs_as_nonroot_from_a_read_only_root(image_sidecar, rootfs):
    proc, _, _ = image_sidecar
    status = open(f"/proc/{proc.pid}/status").read()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(_NONROOT)] * 4
    root, _ = rootfs
    with pytest.raises(OSError):
        open(os.path.join(root, "app", "written-by-test"), "w")


def test_verify_determinism_passes_for_every_golden_vector(image_sidecar, vectors):
    _, stub, _ = image_sidecar
    for v in vectors:
        r = stub.VerifyDeterminism(pb.VerifyDeterminismRequest(test_vector_id=v["name"]), timeout=30)
        assert r.passed, (v["name"], list(r.differences))
        assert r.actual_output_hash == v["output_hash"]


def test_compute_score_matches_the_native_sidecar_byte_for_byte(image_sidecar, native, vectors):
    _, image, _ = image_sidecar
    rng = np.random.RandomState(7)
    inputs = [v["features"] for v in vectors] + [rng.uniform(0, 1, 768).astype(np.float32).tolist() for _ in range(20)]
    for features in inputs:
        request = pb.ComputeScoreRequest(features=features, return_contributions=True)
        got, want = image.ComputeScore(request, timeout=30), native.ComputeScore(request, timeout=30)
        got.compute_time_ms = want.compute_time_ms = 0
        assert got.SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True)
    for v in vectors:
        r = image.ComputeScore(pb.ComputeScoreRequest(features=v["features"]), timeout=30)
        assert (r.output_hash, r.exact_output_hash) == (v["output_hash"], v["exact_output_hash"])


def test_sigterm_exits_zero(image_sidecar):
    proc, _, log_path = image_sidecar
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, open(log_path).read()


def test_the_entrypoint_alone_refuses_to_serve_plaintext_on_every_interface(rootfs):
    argv, env = image_command(*rootfs)
    r = subprocess.run(argv, env=env, cwd="/", capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "refusing to start: --grpc-addr listens on every interface, not loopback" in r.stderr, r.stderr


def test_mounted_models_directory_switches_model_at_the_plan_height(image_sidecar, rootfs, tls):
    """As deploy/docker-compose.yml runs it: the operator's ./models mounted
    read-only over /models, with their plan as /models/plan.json."""
    proc, _, _ = image_sidecar
    assert proc.poll() is not None, "runs after test_sigterm_exits_zero: port 50051 must be free"
    root, config = rootfs
    models = committed_model.copy_models(sidecar_process.tmpdir("image-models-"))
    shutil.copyfile(os.path.join(models, "plan.example.json"), os.path.join(models, "plan.json"))
    with open(os.path.join(models, "plan.json")) as f:
        entries = json.load(f)["entries"]
    height = entries[1]["activation_height"]
    target = os.path.join(root, "models")
    sh("mount", "--bind", models, target)
    sh("mount", "-o", "remount,bind,ro", target)
    log_path = os.path.join(os.path.dirname(root), "sidecar-mounted.log")
    proc, stub, channel = start_image_sidecar(root, config, log_path, tls)
    try:
        for block_height, entry, model_dir in ((height - 1, entries[0], "trust_score"),
                                               (height, entries[1], "trust_score_v1_1"),
                                               (height + 1, entries[1], "trust_score_v1_1")):
            for v in golden.load_vectors(os.path.join(models, model_dir)):
                r = stub.ComputeScore(pb.ComputeScoreRequest(
                    features=v["features"], metadata=pb.InferenceMetadata(block_height=block_height)), timeout=30)
                assert (r.model_version, r.model_hash) == (entry["version"], entry["expected_hash"])
                assert (r.output_hash, r.exact_output_hash) == (v["output_hash"], v["exact_output_hash"]), v["name"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, open(log_path).read()
    finally:
        channel.close()
        if proc.poll() is None:
            proc.kill()
        sh("umount", target)


def main():
    if os.geteuid() != 0:
        print("image_runs_test needs root (unshare, mount, chroot)", file=sys.stderr)
        return 1
    if os.environ.get(_ISOLATED) != "1":
        env = dict(os.environ, **{_ISOLATED: "1"})
        inner = [sys.executable] + (["-S"] if sys.flags.no_site else []) + [os.path.abspath(__file__)]
        script = f'{tool("ip")} link set lo up && exec "$@"'
        return subprocess.run([tool("unshare"), "--net", "--mount", "--propagation", "private", "--fork",
                               "sh", "-c", script, "sh", *inner], env=env).returncode
    return pytest.main([__file__, "-q", "-p", "no:cacheprovider"])


if __name__ == "__main__":
    raise SystemExit(main())
