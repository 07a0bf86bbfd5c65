"""`bazel run //:requirements.update` works, offline, and nothing of the caller's pip setup leaks in.

The update target runs through its own launcher as `bazel run` starts it, on
a scratch workspace holding only requirements.in, with pip pointed at the
verified wheels of @wheelhouse alone (`--no-index --find-links`) and hostile
PIP_* variables in its environment: a resolution from scratch must give
exactly the committed lock's pins, each hash one the lock pins too.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from third_party.pip import wheelhouse

_RUNFILES = os.environ["TEST_SRCDIR"]
_WORKSPACE_RUNFILES = os.path.join(_RUNFILES, "veid_sidecar")
# The update target's own `args` attribute, which `bazel run` would pass it.
_TARGET_ARGS = sys.argv[1:]


class RequirementsUpdateTest(unittest.TestCase):
    def test_update_resolves_the_committed_pins_offline(self):
        workspace = tempfile.mkdtemp(dir=os.environ["TEST_TMPDIR"])
        self.addCleanup(shutil.rmtree, workspace)
        shutil.copy("requirements.in", workspace)
        constraints = os.path.join(workspace, "hostile-constraints.txt")
        with open(constraints, "w") as f:
            f.write("six==1.0.0\n")
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": workspace,
            "BUILD_WORKSPACE_DIRECTORY": workspace,
            # Each would change or break the resolution if pip-tools saw it.
            "PIP_CONSTRAINT": constraints,
            "PIP_FIND_LINKS": os.path.join(workspace, "nowhere"),
            "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
            "PIP_NO_BINARY": ":all:",
        }
        proc = subprocess.run(
            [os.path.join(_WORKSPACE_RUNFILES, "requirements.update"), *_TARGET_ARGS,
             "--no-index", "--find-links=" + os.path.join(_RUNFILES, "wheelhouse", "wheels")],
            cwd=_WORKSPACE_RUNFILES, env=env, capture_output=True, text=True, timeout=900)
        self.assertEqual(proc.returncode, 0, proc.stdout[-4000:] + proc.stderr[-4000:])

        produced = os.path.join(workspace, "requirements_lock.txt")
        want = {name: (version, set(hashes)) for name, version, hashes in wheelhouse.parse_lock("requirements_lock.txt")}
        got = {name: (version, set(hashes)) for name, version, hashes in wheelhouse.parse_lock(produced)}
        self.assertEqual({n: v for n, (v, _) in got.items()}, {n: v for n, (v, _) in want.items()})
        for name, (_, hashes) in got.items():
            self.assertTrue(hashes and hashes <= want[name][1], name)
        with open(produced) as f:
            text = f.read()
        self.assertIn("#    bazel run //:requirements.update\n", text)
        # As the committed lock: each entry line carries its first hash.
        self.assertIn("\nsix==" + want["six"][0] + " --hash=sha256:", text)
        self.assertNotIn("127.0.0.1", text)
        self.assertNotIn("nowhere", text)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
