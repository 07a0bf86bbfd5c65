"""pytest_test: a py_test whose file runs pytest on itself."""

def pytest_test(name, srcs = None, deps = [], **kwargs):
    """A test module `<name>.py` ending in `raise SystemExit(pytest.main([__file__, ...]))`."""
    srcs = srcs or [name + ".py"]
    native.py_test(
        name = name,
        srcs = srcs,
        main = srcs[0],
        deps = deps + ["@pypi//:pytest"],
        **kwargs
    )
