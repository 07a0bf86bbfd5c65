"""The interpreter of the one Python toolchain of this workspace.

Tests, binaries and build actions run on Debian's python3.11 from
third_party/debian/packages.lock.json — the very bytes the image ships —
started through its own dynamic loader and libraries, so neither the host's
Python nor its libc is involved. Bazel never picks `python3` up from PATH.

BOOTSTRAP_INTERPRETER only runs repository rules (unpacking the .debs and
wheels the toolchain needs) and the py_binary launcher stub; it never runs
project code.
"""

BOOTSTRAP_INTERPRETER = "/usr/bin/python3.11"

# Only this minor version is accepted: the lock's wheels are cp311 builds.
VERSION = "3.11"

# PYTHONHOME and the loader pin the stdlib and shared libraries to the
# unpacked .debs; --argv0 makes sys.executable this wrapper, so subprocesses
# started with sys.executable get the same interpreter.
# -S: no site module, so no site-packages reach sys.path; only runfiles and @pypi.
# -P: never prepend the script's (real, source) directory to sys.path.
# -B: the unpacked root is shared; never write bytecode into it.
_WRAPPER = """#!/bin/sh
root={root}
PYTHONHOME="$root/usr"
export PYTHONHOME
exec "$root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --argv0 "$0" \\
  --library-path "$root/lib/x86_64-linux-gnu:$root/usr/lib/x86_64-linux-gnu" \\
  "$root/usr/bin/python3.11" -S -P -B "$@"
"""

# The py_runtime, py_runtime_pair and toolchain are declared in
# //third_party/python:BUILD.bazel with rules_python's rules; this repository
# only holds the checked interpreter.
_BUILD = """\
exports_files([
    "bootstrap_path.txt",
    "python3",
    "root_path.txt",
])
"""

def _python_interpreter_impl(rctx):
    root = rctx.read(rctx.attr.root_path).strip()
    rctx.file("python3", _WRAPPER.format(root = root), executable = True)
    result = rctx.execute(["./python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    if result.return_code != 0:
        fail("Python toolchain: the interpreter unpacked at {} does not run: {}".format(root, result.stderr))
    found = result.stdout.strip()
    if found != rctx.attr.version:
        fail("Python toolchain: {} is Python {}, this workspace needs Python {}".format(
            root,
            found,
            rctx.attr.version,
        ))
    rctx.file("root_path.txt", root + "\n")
    rctx.file("bootstrap_path.txt", BOOTSTRAP_INTERPRETER + "\n")
    rctx.file("BUILD.bazel", _BUILD)

python_interpreter = repository_rule(
    implementation = _python_interpreter_impl,
    attrs = {
        "root_path": attr.label(allow_single_file = True, mandatory = True),
        "version": attr.string(default = VERSION),
    },
    doc = "Wraps the unpacked Debian interpreter and checks its version.",
)
