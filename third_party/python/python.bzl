"""The one Python toolchain of this workspace.

Bazel must never pick `python3` up from PATH: every action, test and binary
runs on the interpreter named here, and the pip repository rule installs the
lock with it too, so moving the project to another interpreter is a change
to INTERPRETER alone.
"""

INTERPRETER = "/usr/bin/python3.11"

# Only this minor version is accepted: the lock's wheels are cp311 builds.
VERSION = "3.11"

# -S: no site module, so neither Debian's dist-packages nor user site-packages
#     reach sys.path; only runfiles and @pypi do.
# -P: never prepend the script's (real, source) directory to sys.path.
_WRAPPER = """#!/bin/sh
exec {interpreter} -S -P "$@"
"""

_BUILD = """\
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

exports_files(["python3", "interpreter_path.txt"])

py_runtime(
    name = "runtime",
    interpreter = ":python3",
    python_version = "PY3",
    stub_shebang = "#!{interpreter}",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
"""

def _python_interpreter_impl(rctx):
    interpreter = rctx.attr.interpreter
    result = rctx.execute([interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    if result.return_code != 0:
        fail("Python toolchain: cannot run {} ({}). Install it: apt-get install -y python3.11".format(
            interpreter,
            result.stderr.strip() or "not found",
        ))
    found = result.stdout.strip()
    if found != rctx.attr.version:
        fail("Python toolchain: {} is Python {}, this workspace needs Python {}".format(
            interpreter,
            found,
            rctx.attr.version,
        ))
    rctx.file("python3", _WRAPPER.format(interpreter = interpreter), executable = True)
    rctx.file("interpreter_path.txt", interpreter + "\n")
    rctx.file("BUILD.bazel", _BUILD.format(interpreter = interpreter))

python_interpreter = repository_rule(
    implementation = _python_interpreter_impl,
    attrs = {
        "interpreter": attr.string(default = INTERPRETER),
        "version": attr.string(default = VERSION),
    },
    doc = "Checks the pinned interpreter's version and defines the toolchain around it.",
)
