"""Wheels of rules_python's own pip tooling: some replace the ones 0.8.1 pins.

`pip_install_dependencies()` (which pip_parse calls) declares each
`pypi__<name>` only when it is not declared yet (`maybe`), so calling
`rules_python_tool_overrides()` first swaps a wheel. Each is a
`pinned_archive` of a wheel on PyPI's file host pinned by sha256, tried on the
input mirrors first: Bazel's repository cache (which survives
`bazel clean --expunge`) serves it offline after one fetch, and
`bazel run //image:mirror` copies it into a release's mirror.
"""

load("//third_party/mirror:mirror.bzl", "pinned_archives")

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
_TOOL_WHEELS = [
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
    # The rest of 0.8.1's tool wheels, with its own pins
    # (python/pip_install/repositories.bzl): declared here only so that they
    # too are fetched through the input mirrors.
    (
        "pypi__click",
        _FILES + "76/0a/b6c5f311e32aeb3b406e03c079ade51e905ea630fc19d1262a46249c1c86/click-8.0.1-py3-none-any.whl",
        "fba402a4a47334742d782209a7c79bc448911afe1149d07bdabdf480b3e2f4b6",
        [],
    ),
    (
        "pypi__colorama",
        _FILES + "44/98/5b86278fbbf250d239ae0ecb724f8572af1c91f4a11edf4d36a206189440/colorama-0.4.4-py2.py3-none-any.whl",
        "9f47eda37229f68eee03b24b9748937c7dc3868f906e8ba69fbcbdd3bc5dc3e2",
        [],
    ),
    (
        "pypi__setuptools",
        _FILES + "7c/5b/3d92b9f0f7ca1645cba48c080b54fe7d8b1033a4e5720091d1631c4266db/setuptools-60.10.0-py3-none-any.whl",
        "782ef48d58982ddb49920c11a0c5c9c0b02e7d7d1c2ad0aa44e1a1e133051c96",
        [],
    ),
    (
        "pypi__wheel",
        _FILES + "27/d6/003e593296a85fd6ed616ed962795b2f87709c3eee2bca4f6d0fe55c6d00/wheel-0.37.1-py2.py3-none-any.whl",
        "4bdcd7d840138086126cd09254dc6195fb4fc6f01c050a1d7236f2630db1d22a",
        [],
    ),
]

# What the mirror writer (//third_party/mirror:archives.json) lists too.
ARCHIVES = [
    {
        "build_file_content": _WHEEL_BUILD.format(deps = repr(["@%s//:lib" % d for d in deps])),
        "name": name,
        "sha256": sha256,
        "type": "zip",
        "url": url,
    }
    for name, url, sha256, deps in _TOOL_WHEELS
]

def rules_python_tool_overrides():
    pinned_archives(ARCHIVES)
