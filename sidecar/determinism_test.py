"""determinism.apply_environment in fresh interpreters (none of them imports TF)."""

import json
import os
import subprocess
import sys

import pytest

from sidecar import determinism


def run(code: str, **env_overrides) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in determinism.ENVIRONMENT}
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


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
