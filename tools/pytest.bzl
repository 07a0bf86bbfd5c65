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
    py_test(
        name = name,
        srcs = srcs,
        main = main,
        deps = deps + [requirement("pytest")],
        **kwargs
    )
