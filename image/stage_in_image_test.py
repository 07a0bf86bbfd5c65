"""A full model upgrade staged only through the image: `podman run … IMAGE stage …`.

A validator's models directory (v1.0.0 and the image's plan) is served by a
container of the built image; v1.1.0 is published to Debian's docker-registry
on loopback; a second container of the same image, given nothing but the
governance facts, stages it into the shared models directory; SIGHUP; the
serving container verifies v1.1.0 and answers the activation height with it,
byte for byte its golden vectors. Rootful podman with a private store
(image/podman.py), host networking so both containers reach the loopback
registry and the test reaches the sidecar.
"""

import json
import os
import shutil
import subprocess
import time

import grpc
import pytest

from image import engine_fixtures
from image import podman
from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import committed_model
from ops import sidecar_process
from sidecar import golden
from sidecar import hashing

_LAYOUT = os.path.join("image", "image")
_REF = "veid-sidecar:latest"
VERSION, HEIGHT = "v1.1.0", 5000


@pytest.fixture(scope="module", autouse=True)
def engine_available():
    engine_fixtures.require(podman.unavailable_reason(), "the engine tests")


@pytest.fixture(scope="module")
def workdir():
    d = podman.short_tmpdir("veid-stage-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def engine(workdir):
    e = podman.Engine(workdir)
    try:
        e.skopeo("copy", "--quiet", f"oci:{_LAYOUT}:latest", f"containers-storage:{_REF}")
        yield e
    finally:
        e.close()


@pytest.fixture(scope="module")
def registry(workdir):
    r = podman.Registry(workdir)
    yield r
    r.close()


def test_an_upgrade_staged_only_through_the_image(workdir, engine, registry):
    release = os.path.join(workdir, "release", "trust_score_v1_1")
    shutil.copytree(os.path.join(os.path.dirname(committed_model.MODEL_SRC), "trust_score_v1_1"), release)
    model_hash = hashing.model_hash(release)
    r = subprocess.run(sidecar_process.python_command("models.publish") + [
        release, f"--registry={registry.host}/veid/models", "--plain-http"],
        env=sidecar_process.child_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)

    models = os.path.join(workdir, "models")
    os.makedirs(models)
    committed_model.copy_model(models)
    shutil.copyfile(os.path.join(os.path.dirname(committed_model.MODEL_SRC), "plan.json"),
                    os.path.join(models, "plan.json"))
    user = f"--user={os.getuid()}:{os.getgid()}"  # the README's: the models directory's owner
    grpc_port, metrics_port = podman.free_port(), podman.free_port()
    engine.podman("run", "--detach", "--name=serving", "--network=host", user, "-v", f"{models}:/models:ro", _REF,
                  f"--grpc-addr=127.0.0.1:{grpc_port}", f"--metrics-addr=127.0.0.1:{metrics_port}",
                  "--plan-poll-interval=1s")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
            stub = pb_grpc.InferenceServiceStub(ch)
            _wait(lambda: _states(stub).get("v1.0.0") in ("MODEL_STATE_VERIFIED", "MODEL_STATE_ACTIVE"), engine)

            t0 = time.monotonic()
            # What the README runs with --rm; here the exit code is read from the container's record,
            # because podman 4.3 without systemd can lose it when --rm removes the container.
            engine.podman("run", "--detach", "--name=stage", "--network=host", user, "-v", f"{models}:/models", _REF,
                          "stage", f"--version={VERSION}", f"--model-hash={model_hash}", f"--height={HEIGHT}",
                          f"--artifact={info['model_artifact']}", "--plain-http")
            _wait(lambda: not engine.inspect("stage")["State"]["Running"], engine, name="stage")
            took = time.monotonic() - t0
            logs = engine.podman("logs", "stage")
            assert engine.inspect("stage")["State"]["ExitCode"] == 0, logs.stdout + logs.stderr
            print(f"\nstage in the container (podman run, TensorFlow import, fetch, golden vectors): {took:.1f}s\n"
                  f"{logs.stdout.strip()}", flush=True)
            engine.podman("kill", "--signal=HUP", "serving")
            _wait(lambda: _states(stub).get(VERSION) == "MODEL_STATE_VERIFIED", engine)
            vectors = golden.load_vectors(os.path.join(models, f"trust_score_{VERSION}"))
            for vector in vectors:
                resp = stub.ComputeScore(pb.ComputeScoreRequest(
                    features=vector["features"], metadata=pb.InferenceMetadata(block_height=HEIGHT)), timeout=60)
                assert (resp.model_version, resp.model_hash, resp.output_hash, resp.exact_output_hash) == (
                    VERSION, model_hash, vector["output_hash"], vector["exact_output_hash"]), vector["name"]
            old = stub.ComputeScore(pb.ComputeScoreRequest(
                features=vectors[0]["features"], metadata=pb.InferenceMetadata(block_height=HEIGHT - 1)), timeout=60)
            assert old.model_version == "v1.0.0"
    finally:
        engine.podman("rm", "--force", "--time=0", "serving", "stage", check=False)


def _states(stub):
    try:
        info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5)
    except grpc.RpcError:
        return {}
    return {e.version: pb.ModelState.Name(e.state) for e in info.plan}


def _wait(predicate, engine, name="serving", timeout=sidecar_process.START_TIMEOUT_S):
    def logs():
        proc = engine.podman("logs", name, check=False)
        return f"timed out:\n{(proc.stdout + proc.stderr)[-6000:]}"

    sidecar_process.wait_until(predicate, timeout, logs, poll_s=0.5)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider"]))
