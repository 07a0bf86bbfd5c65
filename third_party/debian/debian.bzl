"""`debian_packages`: the pinned .debs of packages.lock.json as a repository.

Exposes `:debs` (every verified .deb, the image's Debian layer) and `root/`,
every package's data unpacked, which the Python toolchain runs from. fetch.py
does the work with the bootstrap interpreter and keeps a content-addressed
cache outside the output base, so `bazel clean --expunge` needs no network;
what is not cached comes from the input mirrors (VEID_MIRRORS) before Debian.
"""

load("//third_party/python:python.bzl", "BOOTSTRAP_INTERPRETER")

_BUILD = """\
package(default_visibility = ["//visibility:public"])

filegroup(
    name = "debs",
    srcs = glob(["debs/*.deb"]),
)

exports_files(["root_path.txt"])
"""

def _debian_packages_impl(rctx):
    rctx.report_progress("fetching and verifying the .debs of {}".format(rctx.attr.lock))

    # fetch.py imports these; naming them here re-runs the rule when they change.
    rctx.path(rctx.attr._deb)
    rctx.path(rctx.attr._mirror)
    result = rctx.execute(
        [
            BOOTSTRAP_INTERPRETER,
            "-S",
            rctx.path(rctx.attr._fetch),
            "--lock",
            rctx.path(rctx.attr.lock),
            "--out",
            "debs",
            "--extract",
            "root",
        ],
        timeout = 1800,
        quiet = True,
    )
    if result.return_code != 0:
        fail("debian_packages({}):\n{}".format(rctx.attr.lock, result.stderr))
    rctx.file("root_path.txt", str(rctx.path("root")) + "\n")
    rctx.file("BUILD.bazel", _BUILD)

debian_packages = repository_rule(
    implementation = _debian_packages_impl,
    attrs = {
        "lock": attr.label(allow_single_file = True, mandatory = True),
        "_deb": attr.label(default = "//third_party/debian:deb.py"),
        "_fetch": attr.label(default = "//third_party/debian:fetch.py"),
        "_mirror": attr.label(default = "//third_party/mirror:mirror.py"),
    },
    environ = ["VEID_DEB_CACHE"],
    doc = "Fetches, verifies and unpacks the .debs a lock pins.",
)
