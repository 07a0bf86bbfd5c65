"""Shared plumbing for the benchmarks: flags, sidecar/echo processes, stats, output.

Benchmarks are not tests: they print a table, write <name>.json and <name>.png
to --out-dir and end with a golden-vector check against the sidecar they
measured (a benchmark that made the sidecar faster but wrong must fail).
Every figure is reported next to a baseline measured in the same run, as a
ratio, because the machines they run on are shared and noisy.
"""

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import time

import grpc

from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import sidecar_process
from sidecar import golden
from sidecar import hashing


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    ws = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    p.add_argument("--out-dir", default=os.path.join(ws, "bench", "results") if ws else os.path.join("bench", "results"),
                   help="where <name>.json and <name>.png go (default: $BUILD_WORKSPACE_DIRECTORY/bench/results "
                        "under bazel run, else bench/results)")
    p.add_argument("--commit", default="", help="commit being measured (default: git rev-parse --short HEAD if available)")
    return p


def commit(given: str) -> str:
    if given:
        return given
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=os.environ.get("BUILD_WORKSPACE_DIRECTORY") or None).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            mem = int(next(l for l in f if l.startswith("MemTotal")).split()[1]) // 1024
    except (OSError, StopIteration):
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "mem_mb": mem,
            "kernel": platform.release(), "python": platform.python_version()}


def header(name: str, args) -> dict:
    return {"benchmark": name, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": commit(args.commit), "machine": machine()}


def write(out_dir: str, name: str, doc: dict, fig=None) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, name + ".json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    if fig is not None:
        fig.savefig(os.path.join(out_dir, name + ".png"), dpi=110, bbox_inches="tight")
    print(f"wrote {os.path.join(out_dir, name)}.json" + (" and .png" if fig is not None else ""))


def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(q / 100 * len(sorted_values)) - 1)]


def summary_ms(latencies_s: list[float]) -> dict:
    v = sorted(latencies_s)
    return {"n": len(v), "p50_ms": pct(v, 50) * 1e3, "p95_ms": pct(v, 95) * 1e3, "p99_ms": pct(v, 99) * 1e3,
            "max_ms": v[-1] * 1e3 if v else math.nan, "mean_ms": sum(v) / len(v) * 1e3 if v else math.nan}


def table(rows: list[list], headers: list[str]) -> str:
    cells = [[h for h in headers]] + [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [" | ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def pyplot():
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    return plt


# -- processes ---------------------------------------------------------------------


def start_sidecar(*args: str, env: dict | None = None, cwd_src: str | None = None) -> sidecar_process.Sidecar:
    """A SERVING sidecar on 127.0.0.1 with a dereferenced model copy (ops/sidecar_process)."""
    return sidecar_process.start(*args, env=env, python_path_first=cwd_src)


class Echo:
    """bench/echo_server.py in a child process: the transport's floor
    (`aio`: its grpc.aio variant)."""

    def __init__(self, model_path: str, workers: int = 32, aio: bool = False):
        self.port = sidecar_process.free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            sidecar_process.python_command("bench.echo_server")
            + [f"--addr={self.target}", f"--model-path={model_path}", f"--workers={workers}"]
            + (["--aio"] if aio else []),
            env=sidecar_process.child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        end = time.monotonic() + 60
        with grpc.insecure_channel(self.target) as ch:
            while True:
                try:
                    pb_grpc.InferenceServiceStub(ch).GetModelInfo(pb.GetModelInfoRequest(), timeout=1)
                    return
                except grpc.RpcError:
                    if self.proc.poll() is not None or time.monotonic() > end:
                        self.stop()
                        raise RuntimeError("echo server did not start") from None
                    time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_verified(stub, versions: set[str], timeout: float = 300.0, log=lambda: "") -> None:
    """Until GetModelInfo's plan is exactly `versions`, each verified or active;
    SystemExit if one is rejected or the timeout passes (`log()`: what to show then)."""
    end = time.monotonic() + timeout
    while True:
        info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
        ready = {e.version for e in info.plan if e.state in (pb.MODEL_STATE_VERIFIED, pb.MODEL_STATE_ACTIVE)}
        if ready == versions and len(info.plan) == len(versions):
            return
        bad = [f"{e.version}: {e.reason}" for e in info.plan if e.state == pb.MODEL_STATE_REJECTED]
        if bad or time.monotonic() > end:
            raise SystemExit(f"models not verified: {bad or 'timeout'}\n{log()[-4000:]}")
        time.sleep(0.02)


def _stat_cpu(path: str) -> tuple[str, float]:
    """(command name, user + system CPU seconds) from a /proc .../stat file."""
    with open(path, encoding="ascii", errors="replace") as f:
        stat = f.read()
    # The name is in parentheses and may itself contain spaces or ")".
    fields = stat.rsplit(")", 1)[1].split()
    return stat[stat.index("(") + 1:stat.rindex(")")], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all its threads, also ended ones)."""
    return _stat_cpu(f"/proc/{pid}/stat")[1]


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time so far by kind of thread: TensorFlow's inter-op pool (tf_*),
    gRPC's C-core event engine, and every Python-created thread together
    (gRPC's poller and workers, the metrics server), which share the GIL."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            comm, seconds = _stat_cpu(f"/proc/{pid}/task/{tid}/stat")
        except OSError:  # the thread ended
            continue
        kind = "TensorFlow" if comm.startswith("tf_") else "gRPC C-core" if comm == "event_engine" else "Python"
        out[kind] = out.get(kind, 0.0) + seconds
    return out


def rss_kb(pid: int) -> dict:
    """VmRSS and VmHWM (peak) of a process, in kB."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


# -- the end-of-benchmark golden check ------------------------------------------------


def golden_check(target: str, model_path: str, block_height: int = 0) -> None:
    """Every golden vector through ComputeScore (with contributions) at `block_height`
    (0: none, for a one-model sidecar): exact bytes or SystemExit."""
    vectors = golden.load_vectors(model_path)
    bad = []
    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.InferenceServiceStub(ch)
        for v in vectors:
            r = stub.ComputeScore(pb.ComputeScoreRequest(
                features=v["features"], return_contributions=True,
                metadata=pb.InferenceMetadata(block_height=block_height)), timeout=10)
            got = {"output_hash": r.output_hash, "exact_output_hash": r.exact_output_hash, "input_hash": r.input_hash,
                   "raw_score_bits": hashing.float32_hex(r.raw_score), "score": r.score,
                   "confidence_bits": hashing.float32_hex(r.confidence), "reason_codes": list(r.reason_codes),
                   "contribution_bits": {k: hashing.float32_hex(x) for k, x in r.feature_contributions.items()}}
            bad += [f"{v['name']}: {k}" for k, x in got.items() if v[k] != x]
    if bad:
        raise SystemExit(f"GOLDEN CHECK FAILED after the benchmark: {bad}")
    print(f"golden check: all {len(vectors)} vectors returned their exact bytes")
