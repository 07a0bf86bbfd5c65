"""Runs the real sidecar (python -m sidecar.main) as a subprocess: for tests, benchmarks and ops.cross_cpu.

The child gets the test's own sys.path and interpreter flags, a private
dereferenced copy of the model (runfiles are symlinks, which the model hash
refuses) and loopback ports; its stdout+stderr go to a file so a failing test
can show what the sidecar said.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1 import health_pb2_grpc
from inference.v1 import inference_pb2 as pb
from prometheus_client.parser import text_string_to_metric_families

from ops import committed_model
from sidecar import determinism

SERVICE_NAME = "inference.v1.InferenceService"
# TF import plus the golden self-check take ~5 s; a loaded CI machine, more.
START_TIMEOUT_S = 180.0


def tmpdir(prefix: str = "sidecar-") -> str:
    return tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("TEST_TMPDIR"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_command(module: str | None = None) -> list[str]:
    # Under Bazel the toolchain runs python -S; the child must not see more.
    return [sys.executable] + (["-S"] if sys.flags.no_site else []) + (["-m", module] if module else [])


def child_env(overrides: dict[str, str] | None = None, python_path_first: str | None = None) -> dict[str, str]:
    # The sidecar sets the determinism variables itself and refuses any
    # contradicting value, so the test's own environment must not leak them.
    env = {k: v for k, v in os.environ.items() if k not in determinism.ENVIRONMENT}
    env["PYTHONPATH"] = os.pathsep.join(([python_path_first] if python_path_first else []) + [p for p in sys.path if p])
    env.update(overrides or {})
    return env


def port_is_closed(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) != 0


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str, bytes]:
    """(status, content type, body); HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def end_process(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM, and SIGKILL if `proc` (a helper: registry, dockerd,
    Prometheus) has not exited within `timeout`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Sidecar:
    """One sidecar process; use start() to get one that is already SERVING."""

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        model_path: str | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        python_path_first: str | None = None,
        launch=None,
        upgrade_plan: str | None = None,
        cwd: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ):
        """`upgrade_plan` serves that plan instead of `model_path`, with `cwd` as working directory;
        `grpc_port`/`metrics_port` reuse given ports (e.g. to restart on the same ones);
        `python_path_first` puts another source tree before ours (benchmarks compare commits);
        `launch(python_args) -> (command, env)` starts the interpreter some other way
        (the cross-CPU check puts qemu in front of it);
        `credentials` are the client's for a sidecar serving mutual TLS (its TLS flags go in `args`)."""
        self.credentials = credentials
        self.dir = tmpdir()
        self.model_path = None if upgrade_plan else model_path or committed_model.copy_model(self.dir)
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.target = f"127.0.0.1:{self.grpc_port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}"
        self.log_path = os.path.join(self.dir, "sidecar.log")
        python_args = [
            "-m",
            "sidecar.main",
            f"--grpc-addr={self.target}",
            f"--metrics-addr=127.0.0.1:{self.metrics_port}",
            f"--upgrade-plan={upgrade_plan}" if upgrade_plan else f"--model-path={self.model_path}",
            *args,
        ]
        if launch is None:
            cmd, cmd_env = python_command() + python_args, child_env(env, python_path_first)
        else:
            cmd, cmd_env = launch(python_args)
        with open(self.log_path, "wb") as log:
            self.started_wall = time.time()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=cmd_env, cwd=cwd)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def channel(self) -> grpc.Channel:
        if self.credentials:
            return grpc.secure_channel(self.target, self.credentials)
        return grpc.insecure_channel(self.target)

    def metrics(self) -> dict:
        """/metrics, parsed: {family name: prometheus_client Metric}; must be a 200 text page."""
        status, ctype, body = http_get(self.metrics_url + "/metrics")
        assert status == 200 and ctype.startswith("text/plain"), (status, ctype)
        return {f.name: f for f in text_string_to_metric_families(body.decode())}

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        """The value of one sample on /metrics; AssertionError if it is not there."""
        for family in self.metrics().values():
            for s in family.samples:
                if s.name == name and s.labels == (labels or {}):
                    return s.value
        raise AssertionError(f"no sample {name}{labels or ''} on /metrics")

    def inference_errors(self) -> float:
        """Failed ComputeScore calls as /metrics counts them."""
        return self.sample("veid_inference_total", {"status": "error"})

    def wait_serving(self, timeout: float = START_TIMEOUT_S, poll_s: float = 0.2) -> None:
        end = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError(f"sidecar exited with {rc} before serving:\n{self.log()}")
            # A fresh channel per attempt: a channel that failed to connect backs
            # off for seconds before retrying, which would only measure the backoff.
            with self.channel() as ch:
                try:
                    status = health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=1.0).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
            if time.monotonic() > end:
                self.kill()
                raise AssertionError(f"sidecar not SERVING after {timeout}s:\n{self.log()}")
            time.sleep(poll_s)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> None:
        wait_until(lambda: text in self.log(), timeout, lambda: f"{text!r} not logged within {timeout}s:\n{self.log()}")

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Sends `sig` and returns the exit code (killing the process if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"sidecar still running {timeout}s after signal {sig}:\n{self.log()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start(*args: str, env: dict[str, str] | None = None, python_path_first: str | None = None, **kwargs) -> Sidecar:
    s = Sidecar(*args, env=env, python_path_first=python_path_first, **kwargs)
    try:
        s.wait_serving()
    except BaseException:
        s.kill()
        raise
    return s


@contextlib.contextmanager
def serving(*args: str, **kwargs):
    """start() for the length of a `with` block (a module fixture's life); when
    the block ends the sidecar must still be running and exit 0 on SIGTERM."""
    s = start(*args, **kwargs)
    try:
        yield s
    except BaseException:
        s.kill()
        raise
    assert s.proc.poll() is None, f"sidecar died:\n{s.log()}"
    assert s.terminate() == 0, s.log()


def run_to_exit(*args: str, env: dict[str, str] | None = None, timeout: float = START_TIMEOUT_S,
                prefix: list[str] | tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Runs the sidecar with exactly `args`, expecting it to exit; stdout+stderr in .stdout.

    `prefix` goes before the interpreter (e.g. setpriv, to drop capabilities)."""
    return subprocess.run(
        [*prefix] + python_command("sidecar.main") + list(args),
        env=child_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def wait_staged(stub, log=lambda: "", timeout: float = START_TIMEOUT_S):
    """Until no entry of the served plan is pending; returns the plan. SERVING
    comes with one model verified, and the manager stages the others right
    after, so a check of every entry's state waits for this first."""
    def served_plan():
        return stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30).plan

    def settled():  # the plan in a tuple: an empty plan is settled too, though falsy
        plan = served_plan()
        return (plan,) if all(e.state != pb.MODEL_STATE_PENDING for e in plan) else None

    (plan,) = wait_until(settled, timeout, lambda: f"plan entries still pending after {timeout}s: {served_plan()}\n"
                         f"{log()[-4000:]}", poll_s=0.2)
    return plan


def wait_until(predicate, timeout: float, describe, poll_s: float = 0.05):
    """predicate()'s first truthy value, asked every poll_s; after `timeout` s an
    AssertionError whose message is describe() (a log tail, the last state)."""
    end = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > end:
            raise AssertionError(describe())
        time.sleep(poll_s)
    return value
