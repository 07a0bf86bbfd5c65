"""requirements.in and the lock agree, and a wheel the lock does not pin stops the build.

Both gates are exercised on a copy of the real lock with a real, verified
wheel and no network: the wheelhouse (which fills the cache and feeds @pypi)
and pip as rules_python's pip_parse runs it for every @pypi_<name>, with the
very pip arguments WORKSPACE gives it.
"""

import ast
import glob
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
import zipfile
from email.parser import Parser

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import mirror  # third_party/mirror (wheelhouse's dependency): the one file hash
from third_party.pip import wheelhouse

_RUNFILES = os.environ["TEST_SRCDIR"]
_FILLER = "third_party/pip/wheelhouse.py"


def runfile(*parts):
    return os.path.join(_RUNFILES, *parts)


def read_in(path):
    reqs = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                reqs.append(Requirement(line))
    return reqs


def verified_wheels():
    """{name: wheel path} of the wheelhouse repository the build uses."""
    with open(runfile("wheelhouse", "wheels.json")) as f:
        manifest = json.load(f)
    return manifest, {name: runfile("wheelhouse", "wheels", info["wheel"]) for name, info in manifest.items()}


def runtime_requirements(wheel):
    """Canonical names a wheel requires on this interpreter (markers evaluated, no extras)."""
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        headers = Parser().parsestr(zf.read(meta).decode("utf-8"), headersonly=True)
    names = set()
    for spec in headers.get_all("Requires-Dist") or []:
        req = Requirement(spec)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.add(canonicalize_name(req.name))
    return sorted(names)


def bootstrap_interpreter():
    with open(runfile("python3", "bootstrap_path.txt")) as f:
        return f.read().strip()


class LockConsistencyTest(unittest.TestCase):
    def setUp(self):
        self.direct = read_in("requirements.in")
        self.lock = {name: version for name, version, _ in wheelhouse.parse_lock("requirements_lock.txt")}

    def test_every_direct_requirement_is_locked_within_its_constraint(self):
        for req in self.direct:
            name = canonicalize_name(req.name)
            self.assertIn(name, self.lock, f"{req} is in requirements.in but not in the lock")
            self.assertIn(self.lock[name], req.specifier,
                          f"lock pins {name}=={self.lock[name]}, outside requirements.in's '{req}'")

    def test_lock_is_exactly_the_closure_of_requirements_in(self):
        _, wheels = verified_wheels()
        graph = {name: runtime_requirements(path) for name, path in wheels.items()}
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

    def test_verified_wheels_are_the_locked_ones(self):
        manifest, wheels = verified_wheels()
        for name, info in manifest.items():
            self.assertEqual(info["version"], self.lock[name], name)
            self.assertEqual(mirror.sha256_file(wheels[name]), info["sha256"], name)

    def test_tensorflow_is_pinned(self):
        self.assertEqual(self.lock["tensorflow-cpu"], "2.21.0")


class TamperedLockTest(unittest.TestCase):
    """A copy of the lock's six entry, with its hashes intact or flipped."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.addCleanup(shutil.rmtree, self.tmp)
        # A local "index" holding the real, verified six wheel: no network.
        self.links = os.path.join(self.tmp, "links")
        os.makedirs(self.links)
        (wheel,) = glob.glob(runfile("wheelhouse", "wheels", "six-*.whl"))
        shutil.copy(wheel, self.links)
        with open("requirements_lock.txt") as f:
            text = f.read()
        # The entry line and its continuation lines: every hash pinned for six.
        lines = text[text.index("\nsix==") + 1:].splitlines()
        entry = [lines[0]] + list(itertools.takewhile(lambda l: l.strip().startswith("--hash="), lines[1:]))
        self.six_entry = "\n".join(entry)
        digests = re.findall(r"--hash=sha256:([0-9a-f]{64})", self.six_entry)
        # Every pinned hash of the entry must be wrong for the wheel to be refused.
        self.tampered = self.six_entry
        for digest in digests:
            self.tampered = self.tampered.replace(digest, digest[:-1] + ("0" if digest[-1] != "0" else "1"))

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text + "\n")
        return path

    def fill(self, lock_text):
        """The wheelhouse repository rule's program, as it runs in WORKSPACE."""
        out = os.path.join(self.tmp, "out")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        return subprocess.run(
            [bootstrap_interpreter(), "-S", _FILLER, "--lock", self.write("lock.txt", lock_text),
             "--wheelhouse", os.path.join(self.tmp, "wheelhouse"), "--out", out,
             "--pip-arg=--no-index", f"--pip-arg=--find-links={self.links}"],
            capture_output=True, text=True), out

    def pip_parse_args(self):
        """The pip arguments WORKSPACE gives pip_parse, read back from @pypi."""
        with open(runfile("pypi", "requirements.bzl")) as f:
            (line,) = [l for l in f if l.startswith("_config = ")]
        args = ast.literal_eval(line[len("_config = "):])["extra_pip_args"]
        self.assertIn("--require-hashes", args)
        self.assertIn("--only-binary=:all:", args)
        self.assertIn("--no-index", args)
        # Only the location of the verified wheels is this test's own.
        return [f"--find-links={self.links}" if a.startswith("--find-links=") else a for a in args]

    def pip_wheel(self, lock_text):
        """What whl_library runs for one requirement: `pip --isolated wheel --no-deps ...`."""
        dest = os.path.join(self.tmp, "whl")
        os.makedirs(dest, exist_ok=True)
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": runfile("pypi__pip"), "HOME": self.tmp}
        return subprocess.run(
            [bootstrap_interpreter(), "-m", "pip", "--isolated", "wheel", "--no-deps",
             *self.pip_parse_args(), "-r", self.write("req.txt", lock_text)],
            capture_output=True, text=True, cwd=dest, env=env), dest

    def test_real_entry_fills_the_wheelhouse(self):
        proc, out = self.fill(self.six_entry)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual([os.path.basename(w) for w in glob.glob(os.path.join(out, "wheels", "*.whl"))],
                         os.listdir(self.links))
        with open(os.path.join(out, "defs.bzl")) as f:
            self.assertIn(f'FIND_LINKS = "{os.path.join(out, "wheels")}"', f.read())

    def test_tampered_hash_stops_the_wheelhouse_naming_the_package(self):
        proc, out = self.fill(self.tampered)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("six==1.17.0", proc.stderr)
        self.assertIn("HASH", proc.stderr.upper())
        self.assertFalse(glob.glob(os.path.join(out, "wheels", "*.whl")))

    def test_unpinned_entry_is_refused(self):
        proc, _ = self.fill("six>=1.0 --hash=sha256:" + "0" * 64)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("not pinned", proc.stderr)

    def test_pip_parse_installs_the_real_entry(self):
        proc, dest = self.pip_wheel(self.six_entry)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(sorted(os.listdir(dest)), sorted(os.listdir(self.links)))

    def test_tampered_hash_stops_pip_parse_naming_the_package(self):
        # E.g. a wheel swapped in the wheelhouse's folder behind its back.
        proc, dest = self.pip_wheel(self.tampered)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("six==1.17.0", proc.stdout + proc.stderr)
        self.assertIn("DO NOT MATCH THE HASHES", proc.stdout + proc.stderr)
        self.assertEqual(os.listdir(dest), [])


if __name__ == "__main__":
    unittest.main()
