"""determinism.apply_environment in fresh interpreters (none of them imports TF), and the
flush-to-zero scope in this one."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sidecar import determinism


def run(code: str, **env_overrides) -> subprocess.CompletedProcess:
    env = {
        k: v for k, v in os.environ.items()
        if k not in determinism.ENVIRONMENT and k not in determinism.GUARDED_ENVIRONMENT
    }
    env.update(env_overrides)
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd()] + [p for p in sys.path if p])
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_sets_every_variable():
    r = run(
        "import json, os\n"
        "from sidecar import determinism\n"
        "determinism.apply_environment()\n"
        "print(json.dumps({k: os.environ[k] for k in determinism.ENVIRONMENT}))\n"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == determinism.ENVIRONMENT


def test_refuses_contradicting_environment():
    r = run("from sidecar import determinism\ndeterminism.apply_environment()\n", TF_ENABLE_ONEDNN_OPTS="1")
    assert r.returncode != 0
    assert "DeterminismError" in r.stderr
    assert "TF_ENABLE_ONEDNN_OPTS='1'" in r.stderr and "TF_ENABLE_ONEDNN_OPTS='0'" in r.stderr


def test_accepts_matching_environment_and_isa_cap():
    r = run(
        "from sidecar import determinism\ndeterminism.apply_environment()\n",
        TF_ENABLE_ONEDNN_OPTS="0",
        ONEDNN_MAX_CPU_ISA="AVX",
    )
    assert r.returncode == 0, r.stderr


def test_refuses_omp_threads_other_than_one():
    r = run("from sidecar import determinism\ndeterminism.apply_environment()\n", OMP_NUM_THREADS="4")
    assert r.returncode != 0 and "OMP_NUM_THREADS='4'" in r.stderr


# One value per guarded variable that must be refused; each is something an
# operator could plausibly set for speed.
REFUSED = {
    "ONEDNN_DEFAULT_FPMATH_MODE": "BF16",
    "DNNL_DEFAULT_FPMATH_MODE": "any",
    "TF_SET_ONEDNN_FPMATH_MODE": "BF16",
    "TF_ENABLE_ZENDNN_OPTS": "1",
    "TF_ENABLE_ONEDNN_SPMM": "1",
    "TF_NUM_INTEROP_THREADS": "8",
    "TF_NUM_INTRAOP_THREADS": "2",
    "TF_XLA_FLAGS": "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit",
    "XLA_FLAGS": "--xla_cpu_enable_fast_math=true",
}

# Values of the same variables that cannot change the arithmetic.
ACCEPTED = {
    "ONEDNN_DEFAULT_FPMATH_MODE": "strict",
    "DNNL_DEFAULT_FPMATH_MODE": "STRICT",
    "TF_SET_ONEDNN_FPMATH_MODE": "",
    "TF_ENABLE_ZENDNN_OPTS": "0",
    "TF_ENABLE_ONEDNN_SPMM": "false",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_XLA_FLAGS": "",
    "XLA_FLAGS": "",
}


def test_every_guarded_variable_has_a_refusal_test():
    assert set(REFUSED) == set(ACCEPTED) == set(determinism.GUARDED_ENVIRONMENT)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refuses_arithmetic_changing_variable(name):
    r = run(
        "import os\n"
        "from sidecar import determinism\n"
        "try:\n"
        "    determinism.apply_environment()\n"
        "except determinism.DeterminismError as e:\n"
        "    print(e)\n"
        "    raise SystemExit(3)\n"
        "print('applied', os.environ.get('TF_ENABLE_ONEDNN_OPTS'))\n",
        **{name: REFUSED[name]},
    )
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert f"environment variable {name}={REFUSED[name]!r} is refused" in r.stdout
    assert "applied" not in r.stdout


def test_import_tensorflow_refuses_before_importing_it():
    r = run(
        "import sys\n"
        "from sidecar import determinism\n"
        "try:\n"
        "    determinism.import_tensorflow()\n"
        "except determinism.DeterminismError:\n"
        "    print('tensorflow' in sys.modules)\n",
        TF_XLA_FLAGS="--tf_xla_auto_jit=1",
    )
    assert r.returncode == 0 and r.stdout.strip() == "False", (r.stdout, r.stderr)


def test_accepts_harmless_values_of_guarded_variables():
    r = run("from sidecar import determinism\ndeterminism.apply_environment()\n", **ACCEPTED)
    assert r.returncode == 0, r.stderr


def test_refuses_tensorflow_already_imported():
    r = run(
        "import sys, types\n"
        "sys.modules['tensorflow'] = types.ModuleType('tensorflow')\n"
        "from sidecar import determinism\ndeterminism.apply_environment()\n"
    )
    assert r.returncode != 0 and "tensorflow was imported before" in r.stderr


def test_settings_are_plain_json():
    s = determinism.settings()
    assert json.loads(json.dumps(s)) == s
    assert s["environment"] == determinism.ENVIRONMENT
    assert (s["seed"], s["inter_op_threads"], s["intra_op_threads"]) == (42, 1, 1)


# Made outside any flush scope: inside one, converting 3e-39 to float32 is itself flushed.
_SUBNORMAL, _E10, _E_20, _E_19 = np.float32(3e-39), np.float32(1e10), np.float32(1e-20), np.float32(1e-19)


def _modes() -> list[bytes]:
    """The bits of (subnormal * 1e10, 1e-20 * 1e-19): denormals-are-zero makes the
    first 0 (its input counts as 0, though the product is normal), flush-to-zero
    the second (normal inputs, a subnormal result). Bits, because inside the
    scope a comparison with 0.0 would itself treat a subnormal as 0."""
    return [(_SUBNORMAL * _E10).tobytes(), (_E_20 * _E_19).tobytes()]


def test_flush_denormals_sets_both_modes_only_within_its_block():
    # TF's threads set both; either alone gives other bits for some input.
    zero = np.float32(0.0).tobytes()
    ieee = _modes()
    assert zero not in ieee, ieee
    with determinism.flush_denormals():
        flushed = _modes()
    assert flushed == [zero, zero]
    assert _modes() == ieee
    with pytest.raises(ZeroDivisionError):
        with determinism.flush_denormals():
            raise ZeroDivisionError
    assert _modes() == ieee


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
