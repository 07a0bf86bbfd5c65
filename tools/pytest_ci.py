"""A pytest plugin in every pytest_test: under CI a skip fails the test, and every skip is named.

.ci/run installs what the tests need (tools/host_packages.txt), so a test
that skips there (qemu, a network namespace, a tool missing; a check that
would be blind on this CPU) proves nothing while looking green: with CI=true
the test fails. Either way each skip is printed as one `SKIP_MARKER` line,
which .ci/run collects for its summary. tools/pytest.bzl loads it through
PYTEST_ADDOPTS; .bazelrc passes CI through to tests.
"""

import os

SKIP_MARKER = "pytest_ci: SKIPPED"

_skips: list[tuple[str, str]] = []


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _record(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skips.append((report.nodeid, _reason(report)))


def pytest_collectreport(report):
    _record(report)


def pytest_runtest_logreport(report):
    _record(report)


def pytest_terminal_summary(terminalreporter):
    for nodeid, reason in _skips:
        terminalreporter.write_line(f"{SKIP_MARKER} {nodeid}: {reason}")
    if _skips and under_ci():
        terminalreporter.write_line(f"pytest_ci: {len(_skips)} skipped under CI=true: the test fails")


def pytest_sessionfinish(session, exitstatus):
    if _skips and under_ci() and session.exitstatus == 0:
        session.exitstatus = 1
