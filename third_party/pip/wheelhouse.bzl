"""`wheelhouse`: the wheels a hash-pinned lock names, verified, as a repository.

rules_python's pip_parse installs @pypi from this repository's wheels/ folder
alone (`--no-index --find-links`, see WORKSPACE), so what reaches a build has
passed two hash checks: wheelhouse.py's own (which also fills the cache) and
pip's `--require-hashes`. The image takes its wheels from `:wheels` too.
wheelhouse.py runs on the bootstrap interpreter: it only downloads and hashes.
Wheels missing from the cache come from the input mirrors (VEID_MIRRORS, see
third_party/mirror/mirror.py) before PyPI.
"""

load("//third_party/python:python.bzl", "BOOTSTRAP_INTERPRETER")

_WHEELHOUSE_ENV = "VEID_WHEELHOUSE"

def _cache(rctx):
    explicit = rctx.os.environ.get(_WHEELHOUSE_ENV)
    if explicit:
        return explicit
    home = rctx.os.environ.get("HOME")
    if not home:
        fail("wheelhouse: set {} or HOME to locate the wheelhouse cache".format(_WHEELHOUSE_ENV))
    return home + "/.cache/veid-sidecar/wheelhouse"

def _wheelhouse_impl(rctx):
    rctx.report_progress("verifying the wheels of {}".format(rctx.attr.lock))

    # wheelhouse.py imports it; naming it here re-runs the rule when it changes.
    rctx.path(rctx.attr._mirror)
    result = rctx.execute(
        [
            BOOTSTRAP_INTERPRETER,
            "-S",
            rctx.path(rctx.attr._filler),
            "--lock",
            rctx.path(rctx.attr.lock),
            "--wheelhouse",
            _cache(rctx),
            "--out",
            rctx.path("."),
            "--files",
            rctx.path(rctx.attr.files),
        ],
        timeout = 3600,
        quiet = False,
    )
    if result.return_code != 0:
        fail("wheelhouse({}) failed; fix the lock or regenerate it with `bazel run //:requirements.update`:\n{}".format(
            rctx.attr.lock,
            result.stderr,
        ))

wheelhouse = repository_rule(
    implementation = _wheelhouse_impl,
    attrs = {
        "files": attr.label(
            allow_single_file = True,
            default = "//third_party/pip:wheels.lock.json",
            doc = "each wheel's file name, by which the input mirrors (VEID_MIRRORS) hold it",
        ),
        "lock": attr.label(allow_single_file = True, mandatory = True),
        "_filler": attr.label(default = "//third_party/pip:wheelhouse.py"),
        "_mirror": attr.label(default = "//third_party/mirror:mirror.py"),
    },
    environ = [_WHEELHOUSE_ENV],
    doc = "Fetches (once, into a content-addressed cache) and verifies a --require-hashes lock's wheels.",
)
