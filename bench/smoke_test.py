"""Every benchmark runs: each `bench:` binary with tiny arguments (seconds, not
minutes) must exit 0, print its table and write its JSON.

Benchmarks are not run by anything else, so without this they rot unseen (a
renamed constructor argument once broke `latency` after all its gRPC rounds).
The numbers printed here mean nothing; only that the code paths still work,
including each benchmark's closing golden-vector check.
"""

import os
import re
import subprocess
import sys

import pytest

from ops import sidecar_process

# Per benchmark: arguments that exercise every phase in seconds.
TINY = {
    "latency": ["--calls=20", "--rounds=1", "--warmup=5", "--naive-calls=2", "--profile-calls=20",
                "--paced-seconds=0.3"],
    "throughput": ["--duration=0.5", "--concurrency=1,4"],
    "memory": ["--requests=300", "--peak-duration=0.5"],
    "startup": ["--runs=1"],
    "upgrade": ["--rounds=1", "--settle=0.2"],
    "hostile": ["--calls=20", "--rounds=1", "--hold=50"],
    "replay": ["--heights=200", "--chunk=100"],
    "tls": ["--calls=20", "--connections=3", "--rounds=1"],
}

# common.table's rule under the header row: "----+-------+---".
_TABLE_RULE = re.compile(r"^-+(-\+-+)+$", re.MULTILINE)


def test_every_bench_binary_is_smoke_tested():
    with open(os.path.join("bench", "BUILD.bazel"), encoding="utf-8") as f:
        build = f.read()
    binaries = set(re.findall(r'py_binary\(\s*name = "([^"]+)"', build))
    assert binaries == set(TINY), f"bench binaries {sorted(binaries)} vs smoke-tested {sorted(TINY)}"


@pytest.mark.parametrize("name", sorted(TINY))
def test_benchmark_runs(name, tmp_path):
    out_dir = tmp_path / "results"
    cmd = sidecar_process.python_command(f"bench.{name}") + TINY[name] + [f"--out-dir={out_dir}", "--commit=smoke"]
    proc = subprocess.run(cmd, env=sidecar_process.child_env(), capture_output=True, text=True, timeout=600,
                          check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"bench.{name} exited {proc.returncode}:\n{output[-6000:]}"
    assert _TABLE_RULE.search(proc.stdout), f"bench.{name} printed no table:\n{proc.stdout[-4000:]}"
    assert (out_dir / f"{name}.json").is_file(), f"bench.{name} wrote no {name}.json"


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider", "--durations=0"] + sys.argv[1:]))
