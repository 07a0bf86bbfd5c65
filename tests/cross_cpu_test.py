"""Identical scores on other CPUs: the scorer and the whole sidecar under QEMU.

One module fixture starts everything at once (2 cores: the emulated processes
dominate): a native scorer worker and one per emulated CPU model
(ops/cross_cpu.py), plus a native and an emulated (Haswell) sidecar. Each
test then checks one claim on those results; every comparison is of exact
hashes / serialized bytes.
"""

import concurrent.futures
import os

import pytest

from ops import committed_model
from ops import cross_cpu
from ops import sidecar_process

SIDECAR_CPU = "Haswell"



@pytest.fixture(scope="module")
def model_path():
    return committed_model.copy_model(sidecar_process.tmpdir("cross-cpu-"))


@pytest.fixture(scope="module")
def everything(model_path):
    # Not a skip: CI installs qemu-user (tools/host_packages.txt), and a check
    # that silently skips proves nothing.
    assert cross_cpu.qemu_available(), "qemu-x86_64 not found: apt-get install qemu-user"
    workdir = os.path.dirname(model_path)
    interp = cross_cpu.find_interpreter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        sidecars = pool.submit(
            cross_cpu.compare_sidecars, interp, cross_cpu.cpu_model(SIDECAR_CPU), model_path,
            cross_cpu.random_vectors()[: cross_cpu.SIDECAR_RANDOM_VECTORS],
        )
        runs = pool.submit(cross_cpu.run_all, list(cross_cpu.DEFAULT_CPUS), model_path, workdir)
        result = {"runs": runs.result(), "sidecar": sidecars.result()}
    print("\n" + cross_cpu.format_table(result["runs"], cross_cpu.load_reference()))
    return result


@pytest.fixture(scope="module")
def runs(everything):
    return {r.label: r for r in everything["runs"]}


def _result(runs, label):
    run = runs[label]
    assert run.error is None, f"{label} worker failed:\n{run.error}"
    return run.result


def test_native_matches_golden_and_reference(runs):
    native = _result(runs, "native")
    ref = cross_cpu.load_reference()
    assert ref is not None, "ops/cross_cpu_reference.json missing: bazel run //ops:cross_cpu -- --write_reference"
    assert ref["model_hash"] == native["model_hash"], (
        "the committed model changed; after checking the new model on every CPU, regenerate the reference with "
        "`bazel run //ops:cross_cpu -- --write_reference`"
    )
    assert (ref["vectors"], ref["random_vectors"]) == (len(native["records"]), cross_cpu.RANDOM_VECTORS)
    assert native["digest"] == ref["digest"], "this machine's scores differ from the committed reference"


@pytest.mark.parametrize("cpu", cross_cpu.DEFAULT_CPUS)
def test_guest_sees_the_emulated_cpu(runs, cpu):
    _result(runs, cpu)
    assert cross_cpu.cpu_problems(runs[cpu]) == []


@pytest.mark.parametrize("cpu", cross_cpu.DEFAULT_CPUS)
def test_scores_identical_to_native(runs, cpu):
    native, other = _result(runs, "native"), _result(runs, cpu)
    assert other["model_hash"] == native["model_hash"]
    assert len(other["records"]) == len(native["records"]) == cross_cpu.RANDOM_VECTORS + len(
        [k for k in native["records"] if not k.startswith("random_")]
    )
    assert other["digest"] == native["digest"], "\n".join(cross_cpu.differences(native, other))
    assert other["probe"]["batch_1_x64"] == native["probe"]["batch_1_x64"], "batch-1 serving_default differs"


def test_check_would_catch_a_difference(runs):
    """The same model on a 64-row batch differs across these CPUs (that is why
    the sidecar only runs batch 1); if it did not, 'identical' above could just
    mean the emulation changed nothing. On the AMD EPYC (AVX2) reference
    machine SandyBridge and the AMD-vendor Haswell differ, Haswell does not."""
    native = _result(runs, "native")
    probes = {cpu: _result(runs, cpu)["probe"] for cpu in cross_cpu.DEFAULT_CPUS}
    differing = [cpu for cpu, p in probes.items() if p["batch_64"] != native["probe"]["batch_64"]]
    if not differing:
        pytest.skip("no emulated CPU computes the batch-64 probe differently from this one: the check is blind here")
    # The differing CPUs still agree on the 64 batch-1 rows of the same inputs.
    assert all(probes[cpu]["batch_1_x64"] == native["probe"]["batch_1_x64"] for cpu in differing)


def test_whole_sidecar_under_haswell_is_byte_identical(everything):
    cmp = everything["sidecar"]
    assert cmp.error is None, cmp.error
    assert cmp.responses == 2 * (cross_cpu.SIDECAR_RANDOM_VECTORS + len(_golden_names(everything)))
    assert cmp.differences == [], "\n".join(cmp.differences[:10])


def _golden_names(everything):
    native = everything["runs"][0].result
    return [k for k in native["records"] if not k.startswith("random_")]


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider"]))
