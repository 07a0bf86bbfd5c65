"""deploy/docker-compose.yml and deploy/k8s/validator-pod.yaml, read as data,
so tests run the image with exactly the limits operators deploy.

The files are YAML and the test toolchain has no YAML parser; Debian's
podman-compose, which the compose test runs anyway, depends on python3-yaml,
so the host's /usr/bin/python3 (-I: none of the test's PYTHON* settings)
converts them to JSON: the same parser the
compose tool itself reads the file with.
"""

import json
import os
import re
import subprocess

COMPOSE_FILE = "deploy/docker-compose.yml"
POD_FILE = "deploy/k8s/validator-pod.yaml"
SERVICE = "inference-sidecar"
HOST_PYTHON = "/usr/bin/python3"

# Every key of the service is either turned into a `podman run` flag below or
# named here with the reason it is not: a key added to the compose file later
# must be handled here too, or the test would run something else than operators.
_NOT_RUN_FLAGS = {
    "image": "the test passes the reference it wants to run",
    "stop_grace_period": "the bound `podman stop -t` is given (grace_seconds)",
    "healthcheck": "turned into --health-* flags (health_flags)",
    "command": "the arguments after the image reference (command_args)",
}


def load_yaml(path):
    proc = subprocess.run([HOST_PYTHON, "-I", "-c", "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
                           path], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"cannot read {path} with {HOST_PYTHON} + yaml (apt-get install python3-yaml): {proc.stderr}")
    return json.loads(proc.stdout)


def service(path=COMPOSE_FILE):
    return load_yaml(path)["services"][SERVICE]


def _duration_s(text):
    """Compose durations: '15s', '1m30s', '500ms'."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a compose duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def grace_seconds(svc):
    return _duration_s(svc.get("stop_grace_period", "10s"))


def healthcheck_argv(svc):
    """The healthcheck's command: exec form only, since the image has no shell."""
    test = svc["healthcheck"]["test"]
    if not (isinstance(test, list) and test[0] == "CMD"):
        raise ValueError(f"healthcheck.test must be [\"CMD\", ...] (the image has no /bin/sh), not {test!r}")
    return test[1:]


def health_flags(svc):
    hc = svc["healthcheck"]
    # A JSON array *without* "CMD": podman 4.3 splits `["CMD", ...]` on spaces,
    # but wraps a plain array as CMD itself, so no shell is involved.
    return [f"--health-cmd={json.dumps(healthcheck_argv(svc))}",
            f"--health-interval={hc['interval']}", f"--health-timeout={hc['timeout']}",
            f"--health-start-period={hc['start_period']}", f"--health-retries={hc['retries']}"]


def published_ports(svc):
    """[(host ip, host port, container port)]; every port must be bound to loopback."""
    out = []
    for spec in svc["ports"]:
        ip, host, container = spec.split(":")
        if ip != "127.0.0.1":
            raise ValueError(f"port {spec!r} is not bound to 127.0.0.1")
        out.append((ip, int(host), int(container)))
    return out


def command_args(svc):
    """What the service appends to the image's entrypoint."""
    return list(svc.get("command", []))


def run_flags(svc, host_ports, compose_dir=os.path.dirname(COMPOSE_FILE), health=True):
    """`podman run` (and `docker run`) flags for the service; `host_ports` maps
    each container port to the (free) host port to publish it on, on the compose
    file's address; relative volume sources are relative to `compose_dir`, as
    Compose reads them. `health=False` leaves the healthcheck out: `docker run
    --health-cmd` is always run by a shell (CMD-SHELL), which the image lacks;
    only a compose file (or a Dockerfile) gives Docker the exec form."""
    unknown = set(svc) - set(_NOT_RUN_FLAGS) - {"ports", "read_only", "tmpfs", "user", "cap_drop", "security_opt",
                                                   "deploy", "restart", "volumes"}
    if unknown:
        raise ValueError(f"compose keys this test does not apply: {sorted(unknown)}")
    flags = [f"--publish={ip}:{host_ports[container]}:{container}" for ip, _, container in published_ports(svc)]
    if svc.get("read_only"):
        flags.append("--read-only")
    flags += [f"--tmpfs={path}" for path in svc.get("tmpfs", [])]
    for spec in svc.get("volumes", []):
        source, rest = spec.split(":", 1)
        flags.append(f"--volume={os.path.abspath(os.path.join(compose_dir, source))}:{rest}")
    flags.append(f"--user={svc['user']}")
    flags += [f"--cap-drop={cap}" for cap in svc.get("cap_drop", [])]
    flags += [f"--security-opt={opt}" for opt in svc.get("security_opt", [])]
    limits = svc["deploy"]["resources"]["limits"]
    flags += [f"--cpus={limits['cpus']}", f"--memory={limits['memory']}"]
    flags.append(f"--restart={svc['restart']}")
    return flags + (health_flags(svc) if health else [])


def assert_process_as_configured(pid, svc):
    """The running container process `pid` has the compose file's user, no
    capabilities at all (cap_drop: [ALL]) and no_new_privs, read from the
    kernel (/proc/PID/status), not from what the engine says it applied."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        status = dict(line.split(":", 1) for line in f.read().splitlines())
    uid, gid = svc["user"].split(":")
    assert status["Uid"].split() == [uid] * 4 and status["Gid"].split() == [gid] * 4, (status["Uid"], status["Gid"])
    assert svc["cap_drop"] == ["ALL"], svc["cap_drop"]
    caps = {k: int(status[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    assert not any(caps.values()), caps
    assert "no-new-privileges:true" in svc["security_opt"], svc["security_opt"]
    assert status["NoNewPrivs"].strip() == "1"


def memory_limit_bytes(svc):
    text = svc["deploy"]["resources"]["limits"]["memory"].lower()
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def pod_probes(path=POD_FILE):
    """(readiness probe, liveness probe) of the sidecar container of the pod."""
    pod = load_yaml(path)
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == SERVICE]
    return container["readinessProbe"], container["livenessProbe"]
