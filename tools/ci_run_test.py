""".ci/run sets CI=true for the tests itself, whatever the caller's environment.

The script runs in a scratch checkout where `./bazelw` and
`tools/nix_check.sh` are stand-ins (a real `bazel test //...` inside a test
is out of reach): the stand-in Bazel records the CI it was given and writes a
build event file with one passing test whose log names a skip.
"""

import json
import os
import shutil
import subprocess
import textwrap

import pytest

from tools import pytest_ci

_TEST_LOG = os.path.join("bazel-testlogs", "pkg", "a_test", "test.log")
_BEP = [
    {"id": {"targetConfigured": {"label": "//pkg:a_test"}}, "configured": {"testSize": "SMALL"}},
    {"id": {"testSummary": {"label": "//pkg:a_test"}}, "testSummary": {"overallStatus": "PASSED"}},
]


def checkout(root):
    os.makedirs(os.path.join(root, ".ci"))
    os.makedirs(os.path.join(root, "tools"))
    shutil.copyfile(".ci/run", os.path.join(root, ".ci", "run"))
    with open(os.path.join(root, "README.md"), "w", encoding="utf-8") as f:
        f.write("```sh\n./bazelw test //...           # every test\n```\n")
    bep = "\n".join(json.dumps(e) for e in _BEP)
    bazelw = textwrap.dedent(f"""\
        #!/bin/bash
        printf '%s' "${{CI-unset}}" > ci_seen
        for arg; do case "$arg" in --build_event_json_file=*) bep="${{arg#*=}}";; esac; done
        printf '%s\\n' '{bep}' > "$bep"
        mkdir -p {os.path.dirname(_TEST_LOG)}
        echo '{pytest_ci.SKIP_MARKER} a_test.py::test_x: no qemu' > {_TEST_LOG}
        """)
    for path, text in (("bazelw", bazelw), ("tools/nix_check.sh", "#!/bin/bash\nexit 0\n")):
        with open(os.path.join(root, path), "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(os.path.join(root, path), 0o755)


def run_ci(root, env):
    return subprocess.run(["bash", os.path.join(root, ".ci", "run")], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("caller_ci", [None, "", "false"])
def test_ci_run_sets_ci_true_for_the_tests(tmp_path, caller_ci):
    root = str(tmp_path / "checkout")
    checkout(root)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "VEID_CI_MIN_FREE_GB": "0"}
    if caller_ci is not None:
        env["CI"] = caller_ci
    out = run_ci(root, env)
    with open(os.path.join(root, "ci_seen"), encoding="utf-8") as f:
        assert f.read() == "true"
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[-2:] == ["skipped: //pkg:a_test a_test.py::test_x: no qemu", "2 passed, 0 failed"]
    assert lines[-3].startswith("disk: ") and " GB at the lowest, " in lines[-3], lines


def test_ci_run_refuses_a_disk_too_full_for_the_suite(tmp_path):
    root = str(tmp_path / "checkout")
    checkout(root)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "VEID_CI_MIN_FREE_GB": str(10**9)}
    out = run_ci(root, env)
    assert out.returncode == 3, out.stdout + out.stderr
    assert f"GB free; a full run needs {10**9} GB" in out.stderr, out.stderr
    assert not os.path.exists(os.path.join(root, "ci_seen"))  # the tests never started


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
