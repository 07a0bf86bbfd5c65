"""Process start -> gRPC health SERVING, split into its phases, over several runs.

Phases come from the sidecar's own log (absl timestamps; step 4 logs the hash,
TensorFlow import and load times): interpreter + imports until main(), model
hash, TensorFlow import, SavedModel load, golden self-check (steps 5-6), the
garbage collector's collect + freeze, then binding and the first SERVING
health answer. Baselines in the same run: a
bare interpreter (python -c pass) and one that only imports TensorFlow.
"""

import datetime
import re
import subprocess
import time

from bench import common
from ops import sidecar_process

_TS = re.compile(r"^[IWE](\d{4}) (\d\d):(\d\d):(\d\d)\.(\d{6})")
_LOADED = re.compile(r"hash ([\d.]+)s, TensorFlow import ([\d.]+)s, load ([\d.]+)s")
_FROZEN = re.compile(r"froze \d+ start-up objects for the garbage collector \(([\d.]+)s\)")


def log_times(log: str, day: datetime.date) -> dict:
    out = {}
    for line in log.splitlines():
        m = _TS.match(line)
        if not m:
            continue
        ts = datetime.datetime(day.year, int(m.group(1)[:2]), int(m.group(1)[2:]), int(m.group(2)), int(m.group(3)),
                               int(m.group(4)), int(m.group(5)), tzinfo=datetime.timezone.utc).timestamp()
        for key, text in (("main", "veid-sidecar starting"), ("hash_start", "start-up 3/6"),
                          ("loaded", "start-up 4/6"), ("golden", "start-up 5/6"), ("checked", "self-check passed"),
                          ("serving_log", "SERVING inference.v1")):
            if text in line and key not in out:
                out[key] = ts
        m2 = _LOADED.search(line)
        if m2:
            out["hash_s"], out["import_s"], out["load_s"] = (float(x) for x in m2.groups())
        m3 = _FROZEN.search(line)
        if m3:
            out["freeze_s"] = float(m3.group(1))
    return out


def timed_python(code: str) -> float:
    t0 = time.monotonic()
    subprocess.run([*sidecar_process.python_command("x")[:-2], "-c", code], env=sidecar_process.child_env(),
                   check=True, capture_output=True, timeout=300)
    return time.monotonic() - t0


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    doc = common.header("startup", args)
    runs = []
    for i in range(args.runs):
        bare = timed_python("pass")
        tf_only = timed_python("from sidecar import determinism; determinism.import_tensorflow()")
        s = sidecar_process.Sidecar()
        t0 = s.started_wall
        try:
            s.wait_serving(poll_s=0.02)
            total = time.time() - t0
            if i == args.runs - 1:
                common.golden_check(s.target, s.model_path)
        finally:
            rc = s.terminate()
        assert rc == 0, s.log()
        t = log_times(s.log(), datetime.datetime.now(datetime.timezone.utc).date())
        phases = {
            "interpreter+imports until main": t["main"] - t0,
            "model hash": t["hash_s"],
            "TensorFlow import": t["import_s"],
            "SavedModel load": t["load_s"],
            "golden self-check": t["checked"] - t["golden"],
            "other (metadata, GPU check, vectors file)": (t["golden"] - t["main"]) - t["hash_s"] - t["import_s"]
            - t["load_s"],
            "garbage collector: collect + freeze": t["freeze_s"],
            "bind + first SERVING health answer": total - (t["checked"] - t0) - t["freeze_s"],
        }
        runs.append({"total_s": total, "phases_s": phases, "baseline_bare_python_s": bare,
                     "baseline_tensorflow_import_s": tf_only})
        print(f"run {i + 1}: {total:.2f}s to SERVING ({tf_only:.2f}s for python + TF import alone)", flush=True)
    best = min(runs, key=lambda r: r["total_s"])
    rows = [[k, v, v / best["total_s"]] for k, v in best["phases_s"].items()]
    print(common.table(rows, ["phase (fastest run)", "seconds", "share"]))
    totals = sorted(r["total_s"] for r in runs)
    figures = {"fastest_s": totals[0], "median_s": totals[len(totals) // 2], "slowest_s": totals[-1],
               "median_over_tensorflow_import": totals[len(totals) // 2]
               / sorted(r["baseline_tensorflow_import_s"] for r in runs)[len(runs) // 2]}
    targets = {"<= 8 s to SERVING (median)": figures["median_s"] <= 8.0}
    for k, v in figures.items():
        print(f"{k:32s} {v:.3f}")
    for k, v in targets.items():
        print(f"{'MET ' if v else 'MISS'} {k}")
    doc.update(runs=runs, figures=figures, targets=targets)
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.5 * len(runs)))
    left = [0.0] * len(runs)
    for name in runs[0]["phases_s"]:
        vals = [max(0.0, r["phases_s"][name]) for r in runs]
        ax.barh(range(len(runs)), vals, left=left, label=name)
        left = [a + b for a, b in zip(left, vals)]
    ax.set_yticks(range(len(runs)), [f"run {i + 1}" for i in range(len(runs))])
    ax.set_xlabel("seconds from process start")
    ax.axvline(8, color="red", ls=":")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=3)
    ax.set_title(f"start-up — {doc['date'][:10]} {doc['commit']}")
    common.write(args.out_dir, "startup", doc, fig)


if __name__ == "__main__":
    main()
