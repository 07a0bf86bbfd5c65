"""Sidecar RSS: after start, along 10^5 requests, and the peak under c=64.

Baselines in the same run: a bare interpreter that only imports TensorFlow
(with the sidecar's determinism environment) and the echo server. Growth is
judged after warm-up: RSS at 20 % of the requests vs at the end.
"""

import json
import subprocess
import threading
import time


from bench import common
from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import sidecar_process

GIB_KB = 1024 * 1024


def tf_only_rss_kb() -> int:
    code = ("from sidecar import determinism; determinism.import_tensorflow(); "
            "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])")
    out = subprocess.run([*sidecar_process.python_command("sidecar.determinism")[:-2], "-c", code],
                         env=sidecar_process.child_env(), capture_output=True, text=True, check=True, timeout=300)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--peak-duration", type=float, default=15.0)
    args = p.parse_args()
    doc = common.header("memory", args)
    tf_kb = tf_only_rss_kb()
    sidecar = common.start_sidecar()
    echo = common.Echo(sidecar.model_path)
    samples = []  # (seconds, served, rss kB)
    stop = threading.Event()
    try:
        echo_kb = common.rss_kb(echo.proc.pid)["VmRSS"]
        start_kb = common.rss_kb(sidecar.proc.pid)["VmRSS"]
        with sidecar.channel() as ch:
            stub = pb_grpc.InferenceServiceStub(ch)
            t0 = time.monotonic()

            def sample():
                while not stop.wait(0.5):
                    served = stub.GetMetrics(pb.GetMetricsRequest(), timeout=10).successful_inferences
                    samples.append((time.monotonic() - t0, served, common.rss_kb(sidecar.proc.pid)["VmRSS"]))

            th = threading.Thread(target=sample, daemon=True)
            th.start()
            cmd = sidecar_process.python_command("bench.load_client") + [
                f"--target={sidecar.target}", f"--model-path={sidecar.model_path}", "--concurrency=4",
                f"--requests={args.requests}", "--contributions"]
            run = json.loads(subprocess.run(cmd, env=sidecar_process.child_env(), capture_output=True, text=True,
                                            check=True).stdout.strip().splitlines()[-1])
            after_kb = common.rss_kb(sidecar.proc.pid)["VmRSS"]
            cmd64 = sidecar_process.python_command("bench.load_client") + [
                f"--target={sidecar.target}", f"--model-path={sidecar.model_path}", "--concurrency=64",
                f"--duration={args.peak_duration}", "--contributions"]
            run64 = json.loads(subprocess.run(cmd64, env=sidecar_process.child_env(), capture_output=True, text=True,
                                              check=True).stdout.strip().splitlines()[-1])
            stop.set()
            th.join(10)
            final = common.rss_kb(sidecar.proc.pid)
        common.golden_check(sidecar.target, sidecar.model_path)
    finally:
        stop.set()
        echo.stop()
        rc = sidecar.terminate()
    if rc != 0:
        raise SystemExit(f"sidecar exited {rc}")
    warm = [s for s in samples if s[1] >= 0.2 * args.requests]
    warm_kb = warm[0][2] if warm else start_kb
    figures = {
        "tensorflow_import_only_mb": tf_kb / 1024, "echo_server_mb": echo_kb / 1024,
        "after_start_mb": start_kb / 1024, "warm_mb": warm_kb / 1024, "after_requests_mb": after_kb / 1024,
        "after_c64_mb": final["VmRSS"] / 1024, "peak_mb": final["VmHWM"] / 1024,
        "requests": run["ok"], "request_errors": run["errors"], "c64_calls": run64["ok"], "c64_errors": run64["errors"],
        "growth_after_warmup_mb": (after_kb - warm_kb) / 1024,
        "start_over_tensorflow_only": start_kb / tf_kb, "peak_over_tensorflow_only": final["VmHWM"] / tf_kb,
    }
    targets = {"peak < 1 GiB": final["VmHWM"] < GIB_KB,
               "no growth after warm-up (< 2 % of RSS)": (after_kb - warm_kb) < 0.02 * warm_kb,
               "no errors": not run["errors"] and not run64["errors"]}
    print(common.table([[k, v] for k, v in figures.items()], ["figure", "value"]))
    for k, v in targets.items():
        print(f"{'MET ' if v else 'MISS'} {k}")
    doc.update(figures=figures, targets=targets, samples=samples)
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([s[1] for s in samples], [s[2] / 1024 for s in samples], label="sidecar RSS")
    ax.axhline(tf_kb / 1024, color="grey", ls="--", label="python + TensorFlow import only")
    ax.axhline(1024, color="red", ls=":", label="1 GiB container limit")
    ax.set_xlabel("successful calls served (c=4, then c=64)")
    ax.set_ylabel("MiB")
    ax.legend()
    ax.set_title(f"sidecar memory — {doc['date'][:10]} {doc['commit']}")
    common.write(args.out_dir, "memory", doc, fig)


if __name__ == "__main__":
    main()
