"""pytest_test: a py_test whose file runs pytest on itself."""

load("@pypi//:requirements.bzl", "requirement")
load("@rules_python//python:defs.bzl", "py_test")

def pytest_test(name, srcs = None, deps = [], **kwargs):
    """A test module `<name>.py` ending in `raise SystemExit(pytest.main([__file__, ...]))`.

    Args:
      name: the py_test; its module is `<name>.py`.
      srcs: defaults to `[<name>.py]`; may add helper modules.
      deps: besides pytest.
      **kwargs: passed to py_test (size, data, tags, ...).
    """
    main = name + ".py"
    srcs = srcs or [main]
    if main not in srcs:
        fail("pytest_test %s: srcs must include %s" % (name, main))

    # Every skip is named in the log, and fails the test under CI=true (tools/pytest_ci.py).
    env = dict(kwargs.pop("env", {}))
    env["PYTEST_ADDOPTS"] = " ".join([env.get("PYTEST_ADDOPTS", ""), "-p tools.pytest_ci"]).strip()
    py_test(
        name = name,
        srcs = srcs,
        main = main,
        env = env,
        deps = deps + [
            "//tools:pytest_ci",
            requirement("pytest"),
        ],
        **kwargs
    )
