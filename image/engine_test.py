"""The image as validators run it: through a real container engine (rootful
Podman), through a registry, and with the deploy files as written.

* local: `skopeo copy oci:… containers-storage:…`, the engine reports
  image/DIGEST, `podman run` by digest with deploy/docker-compose.yml's limits,
  healthy by the compose healthcheck, ComputeScore byte-identical to a native
  sidecar, the Kubernetes pod's probes, a c=64 load under the memory limit,
  `podman stop` within the grace period.
* registry: Debian's docker-registry on a free loopback port; push by digest,
  `skopeo inspect` and a pull by digest into a clean store give the same
  digest, and the pulled image runs the same way. skopeo copies no
  referrers; image/referrers.py pushes the SBOM beside the image (the
  referrers tag schema: docker-registry 2.8 has no referrers API), and it
  comes back by the image's digest, byte for byte, the image's digest unchanged.
* compose: podman-compose starts deploy/docker-compose.yml (ports moved to
  free ones) against the loaded image.

Needs root, runc and cgroups, so Bazel runs it locally and alone. Where podman
cannot run the test skips, except under CI=true, where it fails.
"""

import json
import os
import re
import sys
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc

from image import assemble
from image import calls
from image import compose
from image import engine_fixtures
# pytest fixtures, used by name.
from image.engine_fixtures import digest, native, registry, service, tls, vectors, workdir  # noqa: F401
from image import podman
from image import referrers
from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import sidecar_process

_LAYOUT = os.path.join("image", "image")
_SBOM = os.path.join("image", "sbom.spdx.json")
_SBOM_TYPE = "application/spdx+json"
_LOAD_S = 20.0
_CONCURRENCY = 64
_IN_FLIGHT = 16
_INJECTED_LATENCY_S = 2.0
# A load that comes near the limit is a regression long before the kernel's
# OOM killer would show it: the peak must leave this much of the limit free.
_MEMORY_HEADROOM = 0.8


def report(what, value):
    calls.report("engine_test", what, value)


@pytest.fixture(scope="module", autouse=True)
def engine_available():
    engine_fixtures.require(podman.unavailable_reason(), "the engine tests")


@pytest.fixture(scope="module")
def local(workdir, digest):
    """A clean store with the layout loaded the way image/README.md tells operators."""
    engine = podman.Engine(workdir)
    try:
        engine.skopeo("copy", "--quiet", f"oci:{_LAYOUT}:latest", "containers-storage:veid-sidecar:latest")
        yield engine
    finally:
        engine.close()


class Container:
    """One container of the image, run by reference with the compose limits."""

    def __init__(self, engine, ref, name, service, tls, *args):
        """`tls`: the certificates the compose file's volume mounts (the tls fixture)."""
        self.engine, self.name, self.credentials = engine, name, tls["credentials"]
        self.ports = {container: podman.free_port() for _, _, container in compose.published_ports(service)}
        self.health_argv = compose.healthcheck_argv(service)
        started = time.monotonic()
        engine.podman("run", "--detach", f"--name={name}", *compose.run_flags(service, self.ports, tls["compose_dir"]),
                      ref, *compose.command_args(service), *args)
        self.wait_healthy()
        self.seconds_to_healthy = time.monotonic() - started
        info = engine.inspect(name)
        self.pid = info["State"]["Pid"]
        self.target = f"127.0.0.1:{self.ports[50051]}"
        self.wait_published(info)

    def wait_published(self, info):
        """Healthy inside is not reachable outside: the published port must connect too."""
        with self.channel() as ch:
            try:
                grpc.channel_ready_future(ch).result(timeout=60)
            except grpc.FutureTimeoutError:
                network = json.dumps(info["NetworkSettings"], indent=1)[:3000]
                neigh = podman.tool("ip") and self.engine.run(podman.tool("ip"), "neigh", check=False).stdout
                raise AssertionError(f"{self.target} does not connect; container network:\n{network}\n{neigh}") from None

    def logs(self):
        proc = self.engine.podman("logs", self.name, check=False)
        return (proc.stdout + proc.stderr)[-6000:]

    def wait_healthy(self):
        deadline = time.monotonic() + sidecar_process.START_TIMEOUT_S
        while True:
            # The compose healthcheck, run by the engine inside the container.
            if self.engine.podman("healthcheck", "run", self.name, check=False).returncode == 0:
                return
            if not self.engine.inspect(self.name)["State"]["Running"]:
                raise AssertionError(f"container exited before healthy:\n{self.logs()}")
            assert time.monotonic() < deadline, f"not healthy after {sidecar_process.START_TIMEOUT_S}s:\n{self.logs()}"
            time.sleep(1)

    def channel(self):
        return grpc.secure_channel(self.target, self.credentials)

    def stop(self, grace_s):
        started = time.monotonic()
        self.engine.podman("stop", f"--time={int(grace_s)}", self.name)
        took = time.monotonic() - started
        state = self.engine.inspect(self.name)["State"]
        return state["ExitCode"], took


@pytest.fixture(scope="module")
def container(local, digest, service, tls):
    c = Container(local, f"veid-sidecar@{digest}", "veid-local", service, tls)
    report("podman run to healthy (local load, s)", round(c.seconds_to_healthy, 1))
    return c


def test_the_engine_reports_the_recorded_digest(local, digest):
    assert local.image_digest("veid-sidecar:latest") == digest
    # The compose file's reference resolves to the loaded image (Podman
    # matches a name@digest reference by digest); another digest does not.
    assert local.image_digest(f"veid-sidecar@{digest}") == digest
    other = "sha256:" + "0" * 64
    assert local.podman("image", "exists", f"veid-sidecar@{other}", check=False).returncode != 0


def test_runs_with_the_compose_limits(container, service):
    info = container.engine.inspect(container.name)
    host = info["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["Memory"] == compose.memory_limit_bytes(service)
    assert host["NanoCpus"] == int(float(service["deploy"]["resources"]["limits"]["cpus"]) * 1e9)
    assert "no-new-privileges" in " ".join(host["SecurityOpt"])
    bindings = [b for port in host["PortBindings"].values() for b in port]
    assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings), bindings
    compose.assert_process_as_configured(container.pid, service)
    # As root (owner of /app, but with no capabilities) so only the read-only mount can refuse.
    write = container.engine.podman("exec", "--user=0", container.name, "/usr/bin/python3.11", "-S", "-c",
                                    "open('/app/x', 'w')", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    tmp = container.engine.podman("exec", container.name, "/usr/bin/python3.11", "-S", "-c",
                                  "open('/tmp/x', 'w').write('ok')", check=False)
    assert tmp.returncode == 0, tmp.stderr


def test_compute_score_matches_a_native_sidecar(container, native, vectors):
    with container.channel() as ch:
        calls.compare_with_native(pb_grpc.InferenceServiceStub(ch), native, vectors, randoms=30)


def test_kubernetes_probes_pass(container):
    # Both are HTTP: the kubelet's gRPC probe cannot present a client certificate.
    for probe in compose.pod_probes():
        http = probe["httpGet"]
        code, _, body = sidecar_process.http_get(f"http://127.0.0.1:{container.ports[http['port']]}{http['path']}")
        assert 200 <= code < 400, (code, body)
    # What such a probe would meet: the gRPC port refuses a caller without a client certificate.
    with grpc.insecure_channel(container.target) as ch:
        with pytest.raises(grpc.RpcError) as e:
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE


def load(container, requests, duration_s, failures, stop=None):
    """_CONCURRENCY callers cycling through `requests` until `duration_s` has passed
    (or `stop` is set); returns the number of successful calls. A failure is
    recorded as its status code, or a message when the bytes differ."""
    stop = stop or threading.Event()
    done = [0] * _CONCURRENCY
    lock = threading.Lock()
    with container.channel() as ch:
        stub = pb_grpc.InferenceServiceStub(ch)
        want = {i: calls.stable(stub.ComputeScore(r, timeout=30)) for i, r in enumerate(requests)}

        def caller(k):
            i = k
            while not stop.is_set():
                i = (i + 1) % len(requests)
                try:
                    got = calls.stable(stub.ComputeScore(requests[i], timeout=30))
                except grpc.RpcError as e:
                    with lock:
                        failures.append(e.code())
                    continue
                if got != want[i]:
                    with lock:
                        failures.append(f"input {i}: bytes differ under load")
                done[k] += 1

        threads = [threading.Thread(target=caller, args=(k,)) for k in range(_CONCURRENCY)]
        for t in threads:
            t.start()
        stop.wait(duration_s)
        stop.set()
        for t in threads:
            t.join(60)
    return sum(done)


def _requests(vectors):
    rng = np.random.default_rng(5)
    inputs = [v["features"] for v in vectors] + [rng.random(768, dtype=np.float32) for _ in range(4)]
    return [pb.ComputeScoreRequest(features=x, return_contributions=bool(i % 2)) for i, x in enumerate(inputs)]


def test_load_stays_under_the_memory_limit(container, vectors, service):
    failures = []
    done = load(container, _requests(vectors), _LOAD_S, failures)
    peak = podman.memory_peak_bytes(container.pid)
    report(f"cgroup memory peak after c={_CONCURRENCY} for {_LOAD_S:.0f} s (MiB)", round(peak / 2**20, 1))
    report("calls in the load", done)
    assert not failures, failures[:5]
    assert done > 0
    limit = compose.memory_limit_bytes(service)
    assert peak < _MEMORY_HEADROOM * limit, f"peak {peak / 2**20:.0f} MiB of a {limit / 2**20:.0f} MiB limit"


def test_podman_stop_exits_zero_within_the_grace_period(container, vectors, service):
    """The last check on this container: stop it under load. The sidecar
    refuses calls that reach it after SIGTERM (UNAVAILABLE) or the closing
    server cuts them off (CANCELLED); nothing else may fail, and no response
    may differ. Which calls were in flight at the signal cannot be told from
    outside when a call takes milliseconds (a caller thread may wait for the
    GIL between taking its start time and sending), so the drain of calls
    certainly in flight is test_the_pulled_image_runs_and_drains_in_flight_calls's."""
    failures, stop, done = [], threading.Event(), []
    loader = threading.Thread(
        target=lambda: done.append(load(container, _requests(vectors), 120, failures, stop)))
    loader.start()
    time.sleep(3)
    grace = compose.grace_seconds(service)
    code, took = container.stop(grace)
    stop.set()
    loader.join(120)
    assert code == 0, container.logs()
    assert took < grace, f"podman stop took {took:.1f}s, grace is {grace}s"
    assert done and done[0] > 0, "no call ran while stopping"
    assert set(failures) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}, failures[:5]
    assert "stopped" in container.logs()


@pytest.fixture(scope="module")
def pulled(workdir, registry, digest):
    """Published by digest (no tag), pulled by digest into a clean store."""
    engine = podman.Engine(workdir)
    ref = f"{registry.host}/veid-sidecar@{digest}"
    try:
        engine.skopeo("copy", "--quiet", "--dest-tls-verify=false", f"oci:{_LAYOUT}:latest", f"docker://{ref}")
        engine.podman("pull", "--quiet", "--tls-verify=false", ref)
        yield engine, ref
    finally:
        engine.close()


def test_registry_keeps_the_digest(pulled, digest):
    engine, ref = pulled
    inspected = json.loads(engine.skopeo("inspect", "--no-tags", "--tls-verify=false", f"docker://{ref}").stdout)
    assert inspected["Digest"] == digest
    assert engine.image_digest(ref) == digest


def test_the_sbom_travels_with_the_image(pulled, registry, digest):
    engine, ref = pulled
    client = referrers.Registry(f"http://{registry.host}", "veid-sidecar")
    assert client.referrers(digest) == [], "skopeo 1.9 copied a referrer after all"
    (pushed,) = referrers.push(client, _LAYOUT)
    with open(os.path.join("image", "SBOM_DIGEST"), encoding="ascii") as f:
        assert pushed["digest"] == f.read().strip()
    # docker-registry 2.8 has no referrers API: the sha256-<hex> tag lists it.
    assert client.referrers_api(digest) is None
    assert client.manifest(referrers.fallback_tag(digest)) is not None
    assert client.referrers(digest, _SBOM_TYPE) == [pushed]
    with open(_SBOM, "rb") as f:
        assert referrers.fetch(client, digest, _SBOM_TYPE) == f.read()
    # Pushing again adds nothing; another referrer is merged into the same index.
    referrers.push(client, _LAYOUT)
    assert client.referrers(digest) == [pushed]
    subject = assemble.tagged(assemble.read_index(_LAYOUT))
    note = {"schemaVersion": 2, "mediaType": referrers.MANIFEST_MEDIA_TYPE, "artifactType": "text/plain",
            "config": {"mediaType": assemble.EMPTY_MEDIA_TYPE, "digest": client.push_blob(b"{}"), "size": 2},
            "layers": [{"mediaType": "text/plain", "digest": client.push_blob(b"note\n"), "size": 5}],
            "subject": {k: subject[k] for k in ("mediaType", "digest", "size")}}
    data = json.dumps(note).encode()
    client.put_manifest(referrers.digest_of(data), data, referrers.MANIFEST_MEDIA_TYPE)
    other = {"mediaType": referrers.MANIFEST_MEDIA_TYPE, "digest": referrers.digest_of(data), "size": len(data),
             "artifactType": "text/plain"}
    referrers.merge_fallback_index(client, digest, [other])
    assert client.referrers(digest) == [pushed, other]
    assert client.referrers(digest, _SBOM_TYPE) == [pushed]
    inspected = json.loads(engine.skopeo("inspect", "--no-tags", "--tls-verify=false", f"docker://{ref}").stdout)
    assert inspected["Digest"] == digest


def test_the_pulled_image_runs_and_drains_in_flight_calls(pulled, service, native, vectors, tls):
    """Run by digest with the compose limits; this container also sleeps
    _INJECTED_LATENCY_S in every call, so that `podman stop` certainly meets
    calls in flight, and every one of them must still succeed."""
    engine, ref = pulled
    c = Container(engine, ref, "veid-pulled", service, tls, f"--testing-inject-latency={_INJECTED_LATENCY_S}s",
                  "--timeout=5s", "--grpc-workers=48")
    report("podman run to healthy (registry pull, s)", round(c.seconds_to_healthy, 1))
    with c.channel() as ch:
        stub = pb_grpc.InferenceServiceStub(ch)
        futures = {}
        for v in vectors:
            for contributions in (False, True):
                request = pb.ComputeScoreRequest(features=v["features"], return_contributions=contributions)
                futures[(v["name"], contributions)] = (request, stub.ComputeScore.future(request, timeout=30))
        for key, (request, future) in futures.items():
            assert calls.stable(future.result()) == calls.stable(native.ComputeScore(request, timeout=30)), key
        want = vectors[0]
        in_flight = [stub.ComputeScore.future(pb.ComputeScoreRequest(features=want["features"]), timeout=30)
                     for _ in range(_IN_FLIGHT)]
        time.sleep(_INJECTED_LATENCY_S / 4)
        assert not any(f.done() for f in in_flight), "calls finished before the stop; the check proves nothing"
        code, took = c.stop(compose.grace_seconds(service))
        for f in in_flight:
            assert f.result().exact_output_hash == want["exact_output_hash"]
    assert code == 0, c.logs()
    assert took < compose.grace_seconds(service)


def test_compose_file_starts_a_healthy_sidecar(local, workdir, digest, tls):
    """podman-compose runs deploy/docker-compose.yml as written, ports aside.

    Debian 12's podman-compose 1.0.3 wraps every healthcheck in `/bin/sh -c`,
    which this image deliberately lacks, so its own health state never turns
    healthy (see image/README.md); the compose file's healthcheck command is run
    here with `podman exec`, as Docker Compose would run the exec form."""
    svc = compose.service()
    text = open(compose.COMPOSE_FILE, encoding="utf-8").read()
    ports = {}
    for _, host_port, container_port in compose.published_ports(svc):
        ports[container_port] = podman.free_port()
        text = text.replace(f'"127.0.0.1:{host_port}:{container_port}"', f'"127.0.0.1:{ports[container_port]}:{container_port}"')
    assert all(f":{p}:" in text for p in ports.values())
    path = os.path.join(workdir, "docker-compose.yml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    project = "veidcompose"
    tool = [podman.tool("podman-compose"), "--file", path, "--project-name", project]
    try:
        local.run(*tool, "up", "--detach")
        # --all: a container that already exited is found, and its log shown below.
        (name,) = local.podman("ps", "--all", "--filter", f"label=io.podman.compose.project={project}",
                               "--format", "{{.Names}}").stdout.split()
        info = local.inspect(name)
        assert info["ImageDigest"] == digest
        assert info["HostConfig"]["ReadonlyRootfs"] is True
        assert info["HostConfig"]["Memory"] == compose.memory_limit_bytes(svc)
        # The same hardening as the `podman run` container, from the kernel.
        compose.assert_process_as_configured(info["State"]["Pid"], svc)
        deadline = time.monotonic() + sidecar_process.START_TIMEOUT_S
        while local.podman("exec", name, *compose.healthcheck_argv(svc), check=False).returncode != 0:
            assert local.inspect(name)["State"]["Running"], local.podman("logs", name, check=False).stderr[-4000:]
            assert time.monotonic() < deadline, "compose service not healthy"
            time.sleep(1)
        code, _, body = sidecar_process.http_get(f"http://127.0.0.1:{ports[9090]}/health")
        assert code == 200, body
        # What podman-compose made of the healthcheck (documented, not wanted).
        health = info["Config"]["Healthcheck"]["Test"]
        assert re.match(r"/bin/sh", " ".join(health[1:])), health
    finally:
        local.run(*tool, "down", check=False)


if __name__ == "__main__":
    # -s: the measurements report() prints belong in the test log even on success.
    raise SystemExit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider", *sys.argv[1:]]))
