"""Go-style durations ("2s", "500ms", "1.5s", "1m30s") as an absl flag type.

Operators already write these for the chain node's config, so the sidecar
accepts the same spelling rather than bare numbers whose unit is a guess.
"""

import re
import sys

from absl import flags

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse(text: str) -> float:
    """Returns seconds; raises ValueError naming the accepted forms."""
    s = text.strip()
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise ValueError(f"{text!r} is not a duration; use a number with a unit (ns, us, ms, s, m, h), e.g. 2s, 500ms, 1.5s")
    return total


def format_seconds(seconds: float) -> str:
    if seconds >= 1 or seconds == 0:
        return f"{seconds:g}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:g}ms"
    return f"{seconds * 1e6:g}us"


class DurationParser(flags.ArgumentParser):
    syntactic_help = "a duration such as 2s, 500ms, 1.5s or 1m30s"

    def parse(self, argument):
        if isinstance(argument, (int, float)):
            return float(argument)
        return parse(argument)

    def flag_type(self):
        return "duration"


class DurationSerializer(flags.ArgumentSerializer):
    def serialize(self, value):
        return format_seconds(value) if isinstance(value, (int, float)) else str(value)


def DEFINE_duration(name, default, help, flag_values=flags.FLAGS, **kwargs):  # pylint: disable=invalid-name,redefined-builtin
    """Defines a flag whose value is seconds (float), written as a Go duration.

    Attributed to the calling module (not this one) so it shows up in --help.
    """
    kwargs.setdefault("module_name", _calling_module())
    return flags.DEFINE(DurationParser(), name, default, help, flag_values, DurationSerializer(), **kwargs)


def _calling_module() -> str:
    name = sys._getframe(2).f_globals.get("__name__")  # pylint: disable=protected-access
    # absl names the main module after sys.argv[0], as its --help groups it.
    return sys.argv[0] if name == "__main__" else name
