"""`pip_lock`: a hash-pinned requirements lock as the external repository @pypi.

Each distribution becomes `@pypi//:<name>` (lowercase, '-' and '.' as '_'),
a py_library with its declared runtime requirements as deps. The work is done
by install_lock.py beside this file, run on the bootstrap interpreter (it only
unpacks wheels; the toolchain runs their code).
"""

load("//third_party/python:python.bzl", "BOOTSTRAP_INTERPRETER")

_WHEELHOUSE_ENV = "VEID_WHEELHOUSE"

def _wheelhouse(rctx):
    explicit = rctx.os.environ.get(_WHEELHOUSE_ENV)
    if explicit:
        return explicit
    home = rctx.os.environ.get("HOME")
    if not home:
        fail("pip_lock: set {} or HOME to locate the wheelhouse cache".format(_WHEELHOUSE_ENV))
    return home + "/.cache/veid-sidecar/wheelhouse"

def _pip_lock_impl(rctx):
    rctx.report_progress("installing {} into @{}".format(rctx.attr.lock, rctx.name))
    result = rctx.execute(
        [
            BOOTSTRAP_INTERPRETER,
            "-S",
            rctx.path(rctx.attr._installer),
            "--lock",
            rctx.path(rctx.attr.lock),
            "--wheelhouse",
            _wheelhouse(rctx),
            "--out",
            rctx.path("."),
        ],
        timeout = 3600,
        quiet = False,
    )
    if result.return_code != 0:
        fail("pip_lock({}) failed; fix the lock or regenerate it with tools/update_lock.sh:\n{}".format(
            rctx.attr.lock,
            result.stderr,
        ))

pip_lock = repository_rule(
    implementation = _pip_lock_impl,
    attrs = {
        "lock": attr.label(allow_single_file = True, mandatory = True),
        "_installer": attr.label(default = "//third_party/pip:install_lock.py"),
    },
    environ = [_WHEELHOUSE_ENV],
    doc = "Installs a --require-hashes lock, one py_library per distribution.",
)
