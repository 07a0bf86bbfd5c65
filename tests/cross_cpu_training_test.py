"""Training under emulated CPUs exports the committed model bit for bit.

Manual (tags = ["manual"]): an emulated training run takes several minutes
(measured in models/README.md), far beyond CI's budget. //tests:retrain_test
covers the same kernels natively with ONEDNN_MAX_CPU_ISA caps on every build;
this test adds what caps cannot: a different CPUID vendor and an Intel CPU.

    bazel test //tests:cross_cpu_training_test
"""

import concurrent.futures
import filecmp
import os

import pytest

from ops import committed_model
from ops import cross_cpu
from ops import sidecar_process
from sidecar import hashing

CPUS = ("Haswell", "SandyBridge")


@pytest.fixture(scope="module")
def committed():
    return committed_model.copy_model(sidecar_process.tmpdir("committed-"))


@pytest.fixture(scope="module")
def trained():
    assert cross_cpu.qemu_available(), "qemu-x86_64 not found: apt-get install qemu-user"
    interp = cross_cpu.find_interpreter()
    root = sidecar_process.tmpdir("emulated-training-")
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(CPUS)) as pool:
        futures = {
            cpu: pool.submit(cross_cpu.train, interp, cross_cpu.cpu_model(cpu), os.path.join(root, cpu))
            for cpu in CPUS
        }
        runs = {cpu: f.result() for cpu, f in futures.items()}
    for run in runs.values():
        print(f"\ntrained under {run.cpu}: {run.wall_s:.0f}s, model hash {run.model_hash}")
    return runs


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files)


@pytest.mark.parametrize("cpu", CPUS)
def test_emulated_training_reproduces_committed_model(committed, trained, cpu):
    run = trained[cpu]
    assert run.error is None, run.error
    assert run.model_hash == hashing.model_hash(committed)
    files = _files(committed)
    assert _files(run.out_dir) == files
    _, mismatch, errors = filecmp.cmpfiles(committed, run.out_dir, files, shallow=False)
    assert (mismatch, errors) == ([], []), f"{cpu} export differs from the committed model: {mismatch + errors}"


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider"]))
