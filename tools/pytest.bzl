"""pytest_test: a py_test whose file runs pytest on itself."""

def pytest_test(name, srcs = None, deps = [], **kwargs):
    """A test module `<name>.py` ending in `raise SystemExit(pytest.main([__file__, ...]))`.

    `srcs` may add helper modules; the test module is always `<name>.py`.
    """
    main = name + ".py"
    srcs = srcs or [main]
    if main not in srcs:
        fail("pytest_test %s: srcs must include %s" % (name, main))
    native.py_test(
        name = name,
        srcs = srcs,
        main = main,
        deps = deps + ["@pypi//:pytest"],
        **kwargs
    )
