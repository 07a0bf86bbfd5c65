"""pytest fixtures shared by the tests that run the image in an engine
(engine_test: Podman; docker_test: Docker) and compare it with a native
sidecar. A test module imports the ones it uses by name."""

import os
import shutil
import tempfile

import grpc
import pytest

from image import compose
from image import podman
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import committed_model
from ops import dev_certs
from ops import sidecar_process
from sidecar import golden


def require(reason, what):
    """Skips the module's tests when `reason` (why the engine cannot run) is
    set, except under CI=true, where CI installs what they need: then fails."""
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run {what}: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def digest():
    with open(os.path.join("image", "DIGEST"), encoding="ascii") as f:
        return f.read().strip()


@pytest.fixture(scope="module")
def service():
    return compose.service()


@pytest.fixture(scope="module")
def workdir():
    # Not under TEST_TMPDIR: the engines' sockets (conmon's, dockerd's and
    # containerd's) live here, and a Unix socket path must stay under 108 bytes.
    d = tempfile.mkdtemp(prefix="veid-engine-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def registry(workdir):
    """Debian's docker-registry on a free loopback port."""
    r = podman.Registry(workdir)
    yield r
    r.close()


@pytest.fixture(scope="module")
def vectors():
    return golden.load_vectors(committed_model.MODEL_SRC)


@pytest.fixture(scope="module")
def native():
    """The sidecar `bazel run //sidecar` starts, from this checkout."""
    s = sidecar_process.start()
    with s.channel() as channel:
        yield pb_grpc.InferenceServiceStub(channel)
    s.terminate()


@pytest.fixture(scope="module")
def tls(workdir):
    """Development certificates in workdir/tls, where the compose file's ./tls volume finds them
    (workdir holds the copy of the compose file); the key readable by the image's user."""
    certs = dev_certs.make_dev_set(os.path.join(workdir, "tls"))
    os.chown(certs["server_key"], 65532, 65532)
    certs["compose_dir"] = workdir
    certs["credentials"] = grpc.ssl_channel_credentials(
        *(open(certs[k], "rb").read() for k in ("ca", "client_key", "client_cert")))
    return certs
