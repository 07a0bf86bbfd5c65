"""The image under Docker, the way the deployment guide runs it: Debian 12's
docker.io and docker-compose, a private dockerd (image/docker.py), and the
image published to and pulled from a registry by digest.

* docker: push by digest to Debian's docker-registry on loopback, `docker pull`
  by digest (the repo digest is image/DIGEST), `docker run` with exactly the
  compose file's settings and a models directory mounted over /models, chain
  calls byte-identical to a native sidecar, `docker kill -s HUP` (the README's
  command) adopts a new upgrade plan, `docker stop` with calls in flight loses
  none and exits 0 within stop_grace_period.
* compose: `docker-compose up -d` runs deploy/docker-compose.yml (ports moved
  to free ones) with the pulled reference and the models volume given in a
  docker-compose.override.yml beside it, as the file's comment says; compose's
  own exec-form healthcheck reaches `healthy`; `down` stops it, exit 0, within
  stop_grace_period.

The timings the deployment notes quote are printed (`docker_test: ...`).
Needs root, so Bazel runs it locally and alone; it skips where dockerd cannot
run, except under CI=true, where it fails.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import grpc
import pytest

from image import calls
from image import compose
from image import docker
from image import engine_fixtures
# pytest fixtures, used by name.
from image.engine_fixtures import digest, native, registry, service, tls, vectors, workdir  # noqa: F401
from image import podman
from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import committed_model
from ops import sidecar_process
from sidecar import golden

_LAYOUT = os.path.join("image", "image")
_EXAMPLE_PLAN = "plan.example.json"
# Every call of the `docker run` container sleeps this long, so that
# `docker stop` certainly meets calls in flight.
_INJECTED_LATENCY_S = 1.0
_IN_FLIGHT = 16
_NETWORK = "veid"


def report(what, value):
    calls.report("docker_test", what, value)


@pytest.fixture(scope="module", autouse=True)
def docker_available():
    missing = [t for t in ("skopeo", "docker-registry") if not podman.tool(t)]
    reason = docker.unavailable_reason() or (missing and f"missing {missing} (apt-get install skopeo docker-registry)")
    engine_fixtures.require(reason, "the Docker tests")


@pytest.fixture(scope="module")
def daemon(workdir):
    started = time.monotonic()
    d = docker.Daemon(workdir)
    try:
        report("dockerd up (s)", round(time.monotonic() - started, 1))
        report("dockerd version", d.server_version())
        yield d
    finally:
        d.close()


@pytest.fixture(scope="module")
def pulled(daemon, registry, digest):
    """Published by digest (no tag), then `docker pull REGISTRY/veid-sidecar@D`:
    Docker treats a 127.0.0.0/8 registry as insecure, so plain http works
    without any daemon setting."""
    ref = f"{registry.host}/veid-sidecar@{digest}"
    daemon.run(podman.tool("skopeo"), "copy", "--quiet", "--dest-tls-verify=false", f"oci:{_LAYOUT}:latest",
               f"docker://{ref}")
    started = time.monotonic()
    daemon.docker("pull", "--quiet", ref)
    report("docker pull by digest (s)", round(time.monotonic() - started, 1))
    return ref


@pytest.fixture(scope="module")
def models(workdir):
    """An operator's models directory: both committed models, and a plan.json
    that names only v1.0.0 (the image's own plan) until a test stages v1.1.0."""
    d = committed_model.copy_models(workdir)
    for root, dirs, files in os.walk(d):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    example = read_json(os.path.join(d, _EXAMPLE_PLAN))
    write_json(os.path.join(d, "plan.json"), dict(example, entries=example["entries"][:1]))
    return d


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_json(path, obj):
    # Write-then-rename: the sidecar never reads half a plan.
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
    os.replace(path + ".tmp", path)


class Container:
    """One container of the image under Docker, run by reference with the
    compose file's settings (image/compose.py), on a network of its own."""

    def __init__(self, daemon, ref, name, service, tls, *args, volumes=()):
        """`tls`: the certificates the compose file's volume mounts (the tls fixture)."""
        self.daemon, self.name, self.credentials = daemon, name, tls["credentials"]
        self.ports = {container: podman.free_port() for _, _, container in compose.published_ports(service)}
        if daemon.docker("network", "inspect", _NETWORK, check=False).returncode != 0:
            daemon.docker("network", "create", _NETWORK)
        started = time.monotonic()
        daemon.docker("run", "--detach", f"--name={name}", f"--network={_NETWORK}",
                      *compose.run_flags(service, self.ports, tls["compose_dir"], health=False),
                      *[f"--volume={v}" for v in volumes], ref, *compose.command_args(service), *args)
        self.target = f"127.0.0.1:{self.ports[50051]}"
        calls.wait_serving(self.channel, self.running, self.logs)
        self.seconds_to_serving = time.monotonic() - started
        self.pid = self.inspect()["State"]["Pid"]

    def inspect(self):
        return self.daemon.inspect("container", self.name)

    def running(self):
        return self.inspect()["State"]["Running"]

    def logs(self):
        proc = self.daemon.docker("logs", self.name, check=False)
        return (proc.stdout + proc.stderr)[-6000:]

    def channel(self):
        return grpc.secure_channel(self.target, self.credentials)

    def stop(self, grace_s):
        started = time.monotonic()
        self.daemon.docker("stop", f"--time={int(grace_s)}", self.name)
        took = time.monotonic() - started
        return self.inspect()["State"]["ExitCode"], took


@pytest.fixture(scope="module")
def container(daemon, pulled, service, models, tls):
    """The pulled image by digest with the compose settings and the models
    directory over /models, as the compose file's comment says. The plan is
    polled only hourly, so only SIGHUP can make it adopt a new one."""
    c = Container(daemon, pulled, "veid-docker", service, tls, f"--testing-inject-latency={_INJECTED_LATENCY_S}s",
                  "--timeout=5s", "--grpc-workers=48", "--plan-poll-interval=1h", volumes=[f"{models}:/models:ro"])
    report("docker run to SERVING (s)", round(c.seconds_to_serving, 1))
    return c


def test_pull_by_digest_keeps_the_digest(daemon, pulled, registry, digest):
    info = daemon.inspect("image", pulled)
    assert info["RepoDigests"] == [pulled], info["RepoDigests"]
    # The daemon's image id is the config digest the layout's manifest names.
    with open(os.path.join(_LAYOUT, "blobs", *digest.split(":")), encoding="utf-8") as f:
        assert info["Id"] == json.load(f)["config"]["digest"]
    other = f"{registry.host}/veid-sidecar@sha256:{'0' * 64}"
    assert daemon.docker("image", "inspect", other, check=False).returncode != 0


def test_runs_with_the_compose_settings(container, service):
    info = container.inspect()
    host = info["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["Memory"] == compose.memory_limit_bytes(service)
    assert host["NanoCpus"] == int(float(service["deploy"]["resources"]["limits"]["cpus"]) * 1e9)
    assert host["RestartPolicy"]["Name"] == service["restart"]
    assert list(host["Tmpfs"]) == service["tmpfs"]
    bindings = [b for port in host["PortBindings"].values() for b in port]
    assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings), bindings
    compose.assert_process_as_configured(container.pid, service)
    # The compose file's healthcheck command passes, run the way Docker runs
    # the exec form (no shell: the image has none).
    health = container.daemon.docker("exec", container.name, *compose.healthcheck_argv(service), check=False)
    assert health.returncode == 0, health.stderr
    # As root (no capabilities) so only the read-only mounts can refuse.
    for path in ("/app/x", "/models/x"):
        write = container.daemon.docker("exec", "--user=0", container.name, "/usr/bin/python3.11", "-S", "-c",
                                        f"open('{path}', 'w')", check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr, (path, write.stderr)


def test_compute_score_matches_a_native_sidecar(container, native, vectors):
    with container.channel() as ch:
        calls.compare_with_native(pb_grpc.InferenceServiceStub(ch), native, vectors, randoms=10)


def plan_states(stub):
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
    return {e.version: pb.ModelState.Name(e.state) for e in info.plan}


def test_sighup_adopts_a_new_plan(container, models):
    """The README's upgrade runbook under Docker: stage v1.1.0 in the mounted
    models directory, `docker kill -s HUP`; the sidecar verifies it and serves
    it from its activation height."""
    example = read_json(os.path.join(models, _EXAMPLE_PLAN))
    old, new = example["entries"]
    v1_1 = golden.load_vectors(os.path.join(models, new["path"]))[0]
    with container.channel() as ch:
        stub = pb_grpc.InferenceServiceStub(ch)
        assert list(plan_states(stub)) == [old["version"]]
        write_json(os.path.join(models, "plan.json"), example)
        # The hourly poll has not run: without the signal nothing changes.
        time.sleep(1)
        assert list(plan_states(stub)) == [old["version"]]
        started = time.monotonic()
        container.daemon.docker("kill", "--signal=HUP", container.name)
        deadline = time.monotonic() + 60
        while plan_states(stub).get(new["version"]) != "MODEL_STATE_VERIFIED":
            assert container.running() and time.monotonic() < deadline, f"{plan_states(stub)}\n{container.logs()}"
            time.sleep(0.2)
        report("docker kill -s HUP to v1.1.0 verified (s)", round(time.monotonic() - started, 1))
        for height, entry in ((new["activation_height"] - 1, old), (new["activation_height"], new)):
            r = stub.ComputeScore(pb.ComputeScoreRequest(features=v1_1["features"],
                                                         metadata=pb.InferenceMetadata(block_height=height)),
                                  timeout=30)
            assert (r.model_version, r.model_hash) == (entry["version"], entry["expected_hash"]), height
        assert r.exact_output_hash == v1_1["exact_output_hash"]


def test_docker_stop_drains_in_flight_calls(container, service, vectors):
    """The last check on this container: every call in flight at `docker stop`
    (each sleeps _INJECTED_LATENCY_S) succeeds with the right bytes; exit 0
    within stop_grace_period."""
    want = vectors[0]
    request = pb.ComputeScoreRequest(features=want["features"], metadata=pb.InferenceMetadata(block_height=1))
    with container.channel() as ch:
        stub = pb_grpc.InferenceServiceStub(ch)
        in_flight = [stub.ComputeScore.future(request, timeout=30) for _ in range(_IN_FLIGHT)]
        time.sleep(_INJECTED_LATENCY_S / 4)
        assert not any(f.done() for f in in_flight), "calls finished before the stop; the check proves nothing"
        grace = compose.grace_seconds(service)
        code, took = container.stop(grace)
        for f in in_flight:
            assert f.result().exact_output_hash == want["exact_output_hash"]
    report("docker stop with calls in flight (s)", round(took, 1))
    assert code == 0, container.logs()
    assert took < grace, f"docker stop took {took:.1f}s, grace is {grace}s"
    assert "stopped" in container.logs()


def compose_project(workdir, service, ref, models, tls):
    """deploy/docker-compose.yml with free host ports (the only edit), its ./tls
    beside it, and the image reference and models volume in
    docker-compose.override.yml, which docker-compose reads by itself. Returns
    (directory, {container port: host port})."""
    d = os.path.join(workdir, "compose")
    shutil.copytree(os.path.join(tls["compose_dir"], "tls"), os.path.join(d, "tls"))
    os.chown(os.path.join(d, "tls", os.path.basename(tls["server_key"])), 65532, 65532)
    with open(compose.COMPOSE_FILE, encoding="utf-8") as f:
        text = f.read()
    ports = {}
    for _, host_port, container_port in compose.published_ports(service):
        ports[container_port] = podman.free_port()
        spec = f'"127.0.0.1:{host_port}:{container_port}"'
        assert text.count(spec) == 1, spec
        text = text.replace(spec, f'"127.0.0.1:{ports[container_port]}:{container_port}"')
    with open(os.path.join(d, "docker-compose.yml"), "w", encoding="utf-8") as f:
        f.write(text)
    # JSON is YAML: docker-compose reads this as the operator's override file.
    override = {"services": {compose.SERVICE: {"image": ref, "volumes": [f"{models}:/models:ro"]}}}
    with open(os.path.join(d, "docker-compose.override.yml"), "w", encoding="utf-8") as f:
        json.dump(override, f, indent=1)
    return d, ports


def test_compose_up_is_healthy_serves_the_plan_and_stops(daemon, workdir, pulled, service, models, native, vectors,
                                                         tls):
    example = read_json(os.path.join(models, _EXAMPLE_PLAN))
    write_json(os.path.join(models, "plan.json"), example)
    project, ports = compose_project(workdir, service, pulled, models, tls)
    up = ["--project-directory", project, "--project-name", "veid"]
    started = time.monotonic()
    daemon.run(docker.COMPOSE, *up, "up", "--detach", cwd=project)
    try:
        (name,) = daemon.docker("ps", "--filter", "label=com.docker.compose.project=veid",
                                "--format", "{{.Names}}").stdout.split()
        deadline = time.monotonic() + sidecar_process.START_TIMEOUT_S
        while (state := daemon.inspect("container", name)["State"])["Health"]["Status"] != "healthy":
            assert state["Running"] and time.monotonic() < deadline, (
                f"{state['Health']}\n{daemon.docker('logs', name, check=False).stderr[-4000:]}")
            time.sleep(0.5)
        report("docker-compose up to healthy (s)", round(time.monotonic() - started, 1))
        info = daemon.inspect("container", name)
        # Compose's own healthcheck is the file's exec form, no shell.
        assert info["Config"]["Healthcheck"]["Test"] == service["healthcheck"]["test"]
        assert info["Config"]["Image"] == pulled
        host = info["HostConfig"]
        assert host["ReadonlyRootfs"] is True and host["Memory"] == compose.memory_limit_bytes(service)
        assert host["NanoCpus"] == int(float(service["deploy"]["resources"]["limits"]["cpus"]) * 1e9)
        compose.assert_process_as_configured(info["State"]["Pid"], service)
        (mount,) = [m for m in info["Mounts"] if m["Destination"] == "/models"]
        assert (mount["Source"], mount["RW"]) == (models, False), mount
        with grpc.secure_channel(f"127.0.0.1:{ports[50051]}", tls["credentials"]) as ch:
            stub = pb_grpc.InferenceServiceStub(ch)
            sidecar_process.wait_staged(stub)
            states = plan_states(stub)
            assert list(states) == [e["version"] for e in example["entries"]], states
            assert set(states.values()) <= {"MODEL_STATE_ACTIVE", "MODEL_STATE_VERIFIED"}, states
            calls.compare_with_native(stub, native, vectors, randoms=0, block_height=1)
        code, _, body = sidecar_process.http_get(f"http://127.0.0.1:{ports[9090]}/health")
        assert code == 200, body
        # Follow the container until it is gone: its exit code and last words
        # outlive `down`, which removes it.
        waiter = subprocess.Popen([docker.DOCKER, "wait", name], env=daemon.env, stdout=subprocess.PIPE, text=True)
        follower = subprocess.Popen([docker.DOCKER, "logs", "--follow", name], env=daemon.env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)
        started = time.monotonic()
        daemon.run(docker.COMPOSE, *up, "down", cwd=project)
        took = time.monotonic() - started
        exit_code, _ = waiter.communicate(timeout=30)
        logs, _ = follower.communicate(timeout=30)
    finally:
        daemon.run(docker.COMPOSE, *up, "down", "--timeout=0", cwd=project, check=False)
    report("docker-compose down (s)", round(took, 1))
    assert exit_code.strip() == "0", logs[-4000:]
    assert took < compose.grace_seconds(service)
    assert "stopped" in logs, logs[-4000:]


if __name__ == "__main__":
    # -s: the measurements report() prints belong in the test log even on success.
    raise SystemExit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider", *sys.argv[1:]]))
