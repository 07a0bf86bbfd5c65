"""tools/pytest_ci: a skip fails a pytest run under CI=true, and every skip is named."""

import os
import re
import subprocess
import sys
import tempfile
import textwrap

import pytest

from tools import pytest_ci

_SAMPLE = textwrap.dedent("""
    import pytest

    def test_passes():
        pass

    def test_needs_qemu():
        pytest.skip("qemu-x86_64 not installed")
""")


def run_pytest(ci: str | None, source: str = _SAMPLE) -> subprocess.CompletedProcess:
    folder = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    path = os.path.join(folder, "sample_test.py")
    with open(path, "w") as f:
        f.write(source)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tools.pytest_ci", "-p", "no:cacheprovider", path],
                          env=env, capture_output=True, text=True, timeout=120)


def test_skip_is_named_and_allowed_outside_ci():
    out = run_pytest(None)
    assert out.returncode == 0, out.stdout
    assert re.search(rf"^{pytest_ci.SKIP_MARKER} \S*sample_test.py::test_needs_qemu: qemu-x86_64 not installed$",
                     out.stdout, re.M), out.stdout


def test_skip_fails_under_ci():
    out = run_pytest("true")
    assert out.returncode == 1, out.stdout
    assert re.search(rf"^{pytest_ci.SKIP_MARKER} \S*sample_test.py::test_needs_qemu: ", out.stdout, re.M), out.stdout
    assert "1 skipped under CI=true" in out.stdout


def test_no_skip_passes_under_ci():
    out = run_pytest("true", "def test_passes():\n    pass\n")
    assert out.returncode == 0, out.stdout
    assert pytest_ci.SKIP_MARKER not in out.stdout


def test_a_failure_stays_a_failure_under_ci():
    out = run_pytest("true", "def test_fails():\n    assert False\n")
    assert out.returncode == 1, out.stdout


def test_this_pytest_test_target_loads_the_plugin(pytestconfig):
    # tools/pytest.bzl's PYTEST_ADDOPTS is what loads it into every pytest_test
    # target; the subprocesses above load it themselves.
    assert pytestconfig.pluginmanager.has_plugin("tools.pytest_ci"), os.environ.get("PYTEST_ADDOPTS")


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__]))
