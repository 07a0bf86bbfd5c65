"""Tests run on the registered toolchain and see nothing of the host's Python packages."""

import importlib.util
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import unittest

_RUNFILES = os.path.realpath(os.environ["TEST_SRCDIR"])


def read_runfile(path):
    with open(os.path.join(os.environ["TEST_SRCDIR"], path)) as f:
        return f.read().strip()


def stdlib_dirs():
    paths = sysconfig.get_paths()
    dirs = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib")}
    dirs.add(os.path.realpath(os.path.join(paths["stdlib"], "lib-dynload")))
    dirs.add(os.path.realpath(os.path.join(sys.base_prefix, "lib", "python311.zip")))
    return dirs


class HermeticityTest(unittest.TestCase):
    def setUp(self):
        self.root = os.path.realpath(read_runfile("python3/root_path.txt"))
        self.bootstrap = read_runfile("python3/bootstrap_path.txt")

    def test_interpreter_is_the_toolchains(self):
        wrapper = os.path.join(os.environ["TEST_SRCDIR"], "python3", "python3")
        self.assertEqual(os.path.realpath(sys.executable), os.path.realpath(wrapper))
        # Started through the pinned Debian loader, with the pinned stdlib.
        loader = os.path.join(self.root, "lib", "x86_64-linux-gnu", "ld-linux-x86-64.so.2")
        self.assertEqual(os.path.realpath("/proc/self/exe"), os.path.realpath(loader))
        self.assertEqual(os.path.realpath(sys.prefix), os.path.join(self.root, "usr"))
        self.assertEqual(sys.version_info[:2], (3, 11))
        self.assertTrue(sys.flags.no_site, "the toolchain runs python with -S")
        self.assertTrue(sys.flags.safe_path, "the script's folder must not be on sys.path")

    def test_shared_libraries_are_the_pinned_ones(self):
        import ssl  # noqa: F401  (maps libssl/libcrypto)

        import numpy  # noqa: F401  (maps its own .so files from @pypi)

        with open("/proc/self/maps") as f:
            mapped = {line.split()[-1] for line in f if "/" in line and ".so" in line}
        self.assertTrue(mapped)
        for path in sorted(mapped):
            # pip_parse's repositories: @pypi_<distribution>.
            self.assertTrue(path.startswith(self.root + os.sep) or re.search(r"/external/pypi_[a-z0-9_]+/", path),
                            f"{path} comes from neither the pinned Debian root nor @pypi")

    def test_sys_path_is_runfiles_and_stdlib_only(self):
        stdlib = stdlib_dirs()
        for entry in sys.path:
            real = os.path.realpath(entry)
            inside = real == _RUNFILES or real.startswith(_RUNFILES + os.sep)
            # Runfiles entries are symlink trees: judge them by where they sit.
            inside = inside or os.path.abspath(entry).startswith(os.environ["TEST_SRCDIR"])
            self.assertTrue(inside or real in stdlib, f"sys.path entry outside runfiles/stdlib: {entry}")

    def test_host_site_packages_are_not_importable(self):
        # What the same interpreter sees when started the ordinary way.
        host = subprocess.run(
            [self.bootstrap, "-c", "import site, sys; print('\\n'.join(site.getsitepackages()))"],
            capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout.split()
        self.assertTrue(host, "the host interpreter reports no site-packages")
        for folder in host:
            self.assertNotIn(os.path.realpath(folder), {os.path.realpath(p) for p in sys.path})
            if not os.path.isdir(folder):
                continue
            for entry in sorted(os.listdir(folder)):
                name = entry[:-3] if entry.endswith(".py") else entry
                if not name.isidentifier():
                    continue
                spec = importlib.util.find_spec(name)
                if spec is not None and spec.origin:
                    self.assertFalse(os.path.realpath(spec.origin).startswith(os.path.realpath(folder)),
                                     f"{name} imports from the host's {folder}")

    def test_package_installed_only_on_host_is_not_importable(self):
        # Install a package into a user site that the plain interpreter sees,
        # then show the toolchain's wrapper does not.
        with tempfile.TemporaryDirectory(dir=os.environ.get("TEST_TMPDIR")) as base:
            env = {"PATH": "/usr/bin:/bin", "PYTHONUSERBASE": base}
            user_site = subprocess.run([self.bootstrap, "-c", "import site; print(site.getusersitepackages())"],
                                       env=env, capture_output=True, text=True, check=True).stdout.strip()
            os.makedirs(user_site)
            with open(os.path.join(user_site, "veid_host_only.py"), "w") as f:
                f.write("VALUE = 1\n")
            probe = "import veid_host_only; print(veid_host_only.VALUE)"
            plain = subprocess.run([self.bootstrap, "-c", probe], env=env, capture_output=True, text=True)
            self.assertEqual(plain.stdout.strip(), "1", plain.stderr)
            wrapper = os.path.join(os.environ["TEST_SRCDIR"], "python3", "python3")
            ours = subprocess.run([wrapper, "-c", probe], env=env, capture_output=True, text=True)
            self.assertNotEqual(ours.returncode, 0)
            self.assertIn("No module named 'veid_host_only'", ours.stderr)

    def test_tensorflow_is_the_pinned_wheel(self):
        import tensorflow as tf

        self.assertEqual(tf.__version__, "2.21.0")
        self.assertTrue(os.path.abspath(tf.__file__).startswith(os.environ["TEST_SRCDIR"]), tf.__file__)


if __name__ == "__main__":
    unittest.main()
