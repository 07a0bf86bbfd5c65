"""requirements.in and the lock agree, and the installer refuses bytes the lock does not pin."""

import glob
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from third_party.pip import install_lock

_RUNFILES = os.environ["TEST_SRCDIR"]
_INSTALLER = "third_party/pip/install_lock.py"


def read_in(path):
    reqs = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                reqs.append(Requirement(line))
    return reqs


def installed():
    with open(os.path.join(_RUNFILES, "pypi", "installed.json")) as f:
        return json.load(f)


class LockConsistencyTest(unittest.TestCase):
    def setUp(self):
        self.direct = read_in("requirements.in")
        self.lock = {name: version for name, version, _ in install_lock.parse_lock("requirements_lock.txt")}

    def test_every_direct_requirement_is_locked_within_its_constraint(self):
        for req in self.direct:
            name = canonicalize_name(req.name)
            self.assertIn(name, self.lock, f"{req} is in requirements.in but not in the lock")
            self.assertIn(self.lock[name], req.specifier,
                          f"lock pins {name}=={self.lock[name]}, outside requirements.in's '{req}'")

    def test_lock_is_exactly_the_closure_of_requirements_in(self):
        graph = {name: info["requires"] for name, info in installed().items()}
        self.assertEqual(sorted(graph), sorted(self.lock))
        reachable, todo = set(), [canonicalize_name(r.name) for r in self.direct]
        while todo:
            name = todo.pop()
            if name not in reachable:
                reachable.add(name)
                todo.extend(graph.get(name, []))
        self.assertEqual(sorted(set(self.lock) - reachable), [],
                         "lock entries nothing in requirements.in needs (stale lock)")
        self.assertEqual(sorted(reachable - set(self.lock)), [],
                         "requirements the lock lacks")

    def test_installed_versions_are_the_locked_ones(self):
        for name, info in installed().items():
            self.assertEqual(info["version"], self.lock[name], name)

    def test_tensorflow_is_pinned(self):
        self.assertEqual(self.lock["tensorflow-cpu"], "2.21.0")


class TamperedLockTest(unittest.TestCase):
    """Runs the repository rule's install logic on a copy of the real lock."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.addCleanup(shutil.rmtree, self.tmp)
        # A local "index" holding the real, verified six wheel: no network.
        self.links = os.path.join(self.tmp, "links")
        os.makedirs(self.links)
        (wheel,) = glob.glob(os.path.join(_RUNFILES, "pypi", "wheels", "six-*.whl"))
        shutil.copy(wheel, self.links)
        with open("requirements_lock.txt") as f:
            text = f.read()
        # The entry line and its continuation lines: every hash pinned for six.
        lines = text[text.index("\nsix==") + 1:].splitlines()
        entry = [lines[0]] + list(itertools.takewhile(lambda l: l.strip().startswith("--hash="), lines[1:]))
        self.six_entry = "\n".join(entry)

    def install(self, lock_text):
        lock = os.path.join(self.tmp, "lock.txt")
        with open(lock, "w") as f:
            f.write(lock_text + "\n")
        out = os.path.join(self.tmp, "out")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        # The repository rule runs the installer on the bootstrap interpreter.
        with open(os.path.join(_RUNFILES, "python3", "bootstrap_path.txt")) as f:
            bootstrap = f.read().strip()
        return subprocess.run(
            [bootstrap, _INSTALLER, "--lock", lock,
             "--wheelhouse", os.path.join(self.tmp, "wheelhouse"), "--out", out,
             "--pip-arg=--no-index", f"--pip-arg=--find-links={self.links}"],
            capture_output=True, text=True), out

    def test_real_entry_installs(self):
        proc, out = self.install(self.six_entry)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(os.path.isfile(os.path.join(out, "site", "six", "six.py")))
        with open(os.path.join(out, "BUILD.bazel")) as f:
            self.assertIn('name = "six"', f.read())

    def test_tampered_hash_stops_the_install_naming_the_package(self):
        digest = self.six_entry.split("--hash=sha256:")[1][:64]
        flipped = digest[:-1] + ("0" if digest[-1] != "0" else "1")
        tampered = self.six_entry.replace(digest, flipped)
        # Every pinned hash of the entry must be wrong for the wheel to be refused.
        for other in self.six_entry.split("--hash=sha256:")[2:]:
            tampered = tampered.replace(other[:64], "0" * 64)
        proc, out = self.install(tampered)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("six==1.17.0", proc.stderr)
        self.assertIn("HASH", proc.stderr.upper())
        self.assertFalse(os.path.exists(os.path.join(out, "site", "six")))

    def test_unpinned_entry_is_refused(self):
        proc, _ = self.install("six>=1.0 --hash=sha256:" + "0" * 64)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("not pinned", proc.stderr)


if __name__ == "__main__":
    unittest.main()
