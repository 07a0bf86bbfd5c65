"""Wheels of rules_python's own pip tooling that replace the ones 0.8.1 pins.

`pip_install_dependencies()` (which pip_parse calls) declares each
`pypi__<name>` only when it is not declared yet (`maybe`), so calling
`rules_python_tool_overrides()` first swaps a wheel. Each is an http_archive of
a wheel on PyPI's file host pinned by sha256: Bazel's repository cache (which
survives `bazel clean --expunge`) serves it offline after one fetch.
"""

load("@bazel_tools//tools/build_defs/repo:http.bzl", "http_archive")

# As rules_python 0.8.1 lays out its tool wheels (python/pip_install/repositories.bzl),
# plus the requirements of a wheel that 0.8.1's did not have.
_WHEEL_BUILD = """\
load("@rules_python//python:defs.bzl", "py_library")

package(default_visibility = ["//visibility:public"])

py_library(
    name = "lib",
    srcs = glob(["**/*.py"]),
    data = glob(["**/*"], exclude = ["**/*.py", "**/* *", "BUILD", "WORKSPACE"]),
    imports = ["."],
    deps = {deps},
)
"""

# pip-compile's arguments for //:requirements (compile_pip_requirements adds
# --generate-hashes); //third_party/pip:update_test passes the same.
PIP_COMPILE_ARGS = [
    "--allow-unsafe",
    "--no-emit-index-url",
    "--strip-extras",
]

_FILES = "https://files.pythonhosted.org/packages/"

# (repository, wheel URL, sha256, repositories its lib needs)
_OVERRIDES = [
    # 1.8.2 fails on Metadata-Version 2.4/2.5 ("'NoneType' object has no
    # attribute 'replace'"), which most of the lock's wheels carry; 2.0 reads them.
    (
        "pypi__pkginfo",
        _FILES + "ec/1b/08f1ee028bff827941c5f9a53e5160bb1c67b20f0c49dcc55d2287397c24/pkginfo-2.0-py3-none-any.whl",
        "98c7aaa804dfe017b0de65d4b41a2f4649a656f43d3c21525b13e8075716fa1b",
        [],
    ),
    # pip 22.0.4 imports distutils unconditionally, which the toolchain's
    # Debian python3.11 leaves out (python3-distutils), so
    # compile_pip_requirements could not run on it; 24.0 only imports it
    # where sysconfig is not used (Python < 3.10). It keeps the pip internals
    # rules_python 0.8.1's pip_parse reads the lock with.
    (
        "pypi__pip",
        _FILES + "8a/6a/19e9fe04fca059ccf770861c7d5721ab4c2aebc539889e97c7977528a53b/pip-24.0-py3-none-any.whl",
        "ba0d021a166865d2265246961bec0152ff124de910c5cc39f1156ce3fa7c69dc",
        [],
    ),
    # pip-tools 5.5.0 needs pip < 22.1 internals and has no --strip-extras;
    # 7.6.2 is what wrote requirements_lock.txt.
    (
        "pypi__pip_tools",
        _FILES + "4b/68/f3bd09c53ed3159bb1349e1d5859ad1ea7755b8e4cd50174290e9e8cbb47/pip_tools-7.6.2-py3-none-any.whl",
        "f37eb4b736859c2c30230e50977312c61918b7ef931071ff7811fd067715c25f",
        ["pypi__build", "pypi__pyproject_hooks", "pypi__wheel"],
    ),
    (
        "pypi__build",
        _FILES + "84/c2/80633736cd183ee4a62107413def345f7e6e3c01563dbca1417363cf957e/build-1.2.2.post1-py3-none-any.whl",
        "1d61c0887fa860c01971625baae8bdd338e517b836a2f70dd1f7aa3a6b2fc5b5",
        ["pypi__packaging", "pypi__pyproject_hooks"],
    ),
    (
        "pypi__pyproject_hooks",
        _FILES + "bd/24/12818598c362d7f300f18e74db45963dbcb85150324092410c8b49405e42/pyproject_hooks-1.2.0-py3-none-any.whl",
        "9e5c6bfa8dcc30091c74b0cf803c81fdd29d94f01992a7707bc97babb1141913",
        [],
    ),
    (
        "pypi__packaging",
        _FILES + "88/ef/eb23f262cca3c0c4eb7ab1933c3b1f03d021f2c48f54763065b6f0e321be/packaging-24.2-py3-none-any.whl",
        "09abb1bccd265c01f4a3aa3f7a7db064b36514d2cba19a2f694fe6150451a759",
        [],
    ),
]

def rules_python_tool_overrides():
    for name, url, sha256, deps in _OVERRIDES:
        http_archive(
            name = name,
            build_file_content = _WHEEL_BUILD.format(deps = repr(["@%s//:lib" % d for d in deps])),
            sha256 = sha256,
            type = "zip",
            url = url,
        )
