"""Rate-limited logging of rejected calls, so a flood of bad requests cannot flood the log.

Per kind of rejection (e.g. "ComputeScore INVALID_ARGUMENT"): a rejection is
logged in full when no line of its kind was written within the last
--reject-log-interval; otherwise it is only counted, and once the interval since
that kind's last line has passed, one summary line gives the count and the
latest message. So each kind writes at most one line per interval, however
many calls are rejected, and a trickle of rejections is still logged in full.
Counters (veid_inference_total{status="error"}) are not affected: the caller
counts every rejection before it asks whether to log it.
"""

import atexit
import dataclasses
import logging as std_logging
import threading
import time

from absl import flags
from absl import logging

from sidecar import duration

DEFAULT_INTERVAL_S = 60.0
duration.DEFINE_duration(
    "reject-log-interval", f"{DEFAULT_INTERVAL_S:g}s",
    "Rejected calls of one kind are logged in full at most once per interval, the rest as one summary line "
    "with their count; 0 logs every rejection.",
)
flags.register_validator("reject-log-interval", lambda v: v >= 0, "must be >= 0")

FLAGS = flags.FLAGS


@dataclasses.dataclass
class _Kind:
    last_line: float  # clock() when this kind last wrote a line
    pending: int = 0  # rejections counted since then
    latest: str = ""


class RejectLog:
    """Thread-safe. `admit(kind, message)` says whether to log `message` in full now.

    `interval_s=None` reads --reject-log-interval (its default where flags are
    not parsed, e.g. an embedded scorer). `emit(fmt, *args)` writes a summary
    line; `timers=False` leaves summaries to explicit flush_due() calls (tests).
    """

    def __init__(self, interval_s: float | None = None, *, emit=None, clock=time.monotonic, timers: bool = True):
        self._interval_s = interval_s
        self._emit = emit or logging.warning
        self._clock = clock
        self._timers = timers
        self._lock = threading.Lock()
        self._kinds: dict[str, _Kind] = {}
        self._timer: threading.Timer | None = None

    @property
    def interval_s(self) -> float:
        if self._interval_s is not None:
            return self._interval_s
        return FLAGS["reject-log-interval"].value if FLAGS.is_parsed() else DEFAULT_INTERVAL_S

    def admit(self, kind: str, message: str) -> bool:
        interval = self.interval_s
        now = self._clock()
        summary = None
        with self._lock:
            k = self._kinds.get(kind)
            if k is None or (k.pending == 0 and now - k.last_line >= interval):
                self._kinds[kind] = _Kind(last_line=now)
                return True
            k.pending += 1
            k.latest = message
            if now - k.last_line >= interval:
                summary = self._take(kind, k, now)
            else:
                self._schedule(k.last_line + interval - now)
        self._write(summary)
        return False

    def flush_due(self) -> None:
        """Writes the summary of every kind whose interval has passed."""
        self._flush(due_only=True)

    def flush_all(self) -> None:
        """Writes every pending summary now (at exit: nothing counted goes unreported)."""
        self._flush(due_only=False)

    def _flush(self, due_only: bool) -> None:
        interval = self.interval_s
        now = self._clock()
        with self._lock:
            self._timer = None
            summaries, next_due = [], None
            for kind, k in self._kinds.items():
                if not k.pending:
                    continue
                due = k.last_line + interval
                if not due_only or now >= due:
                    summaries.append(self._take(kind, k, now))
                elif next_due is None or due < next_due:
                    next_due = due
            if next_due is not None:
                self._schedule(next_due - now)
        for s in summaries:
            self._write(s)

    @staticmethod
    def _take(kind: str, k: _Kind, now: float) -> tuple:
        summary = (kind, k.pending, now - k.last_line, k.latest)
        k.pending, k.latest, k.last_line = 0, "", now
        return summary

    def _schedule(self, delay: float) -> None:
        # One timer for all kinds: at most one extra thread, only while something is pending.
        if self._timers and self._timer is None:
            self._timer = threading.Timer(max(delay, 0.0), self.flush_due)
            self._timer.name = "reject-log"
            self._timer.daemon = True
            self._timer.start()

    def _write(self, summary: tuple | None) -> None:
        if summary is not None:
            kind, count, seconds, latest = summary
            self._emit("%s: %d more rejected in the last %.0fs (logged at most once per --reject-log-interval); "
                       "latest: %s", kind, count, seconds, latest)


REJECTS = RejectLog()
atexit.register(REJECTS.flush_all)

GRPC_UNDECODABLE = "undecodable request"
_GRPC_DESERIALIZE_MESSAGE = "Exception deserializing message!"


class _GrpcDeserializeFilter(std_logging.Filter):
    """gRPC logs a traceback for every request whose bytes do not parse (and answers INTERNAL)."""

    def __init__(self, rejects: RejectLog):
        super().__init__()
        self._rejects = rejects

    def filter(self, record: std_logging.LogRecord) -> bool:
        if record.getMessage() != _GRPC_DESERIALIZE_MESSAGE:
            return True
        exc = record.exc_info[1] if record.exc_info else None
        return self._rejects.admit(GRPC_UNDECODABLE, f"{_GRPC_DESERIALIZE_MESSAGE} {exc!r}")


_grpc_filter_installed = False


def install_grpc_filter(rejects: RejectLog = REJECTS) -> None:
    """Rate-limits gRPC's own per-request deserialization tracebacks (idempotent)."""
    global _grpc_filter_installed  # pylint: disable=global-statement
    if not _grpc_filter_installed:
        std_logging.getLogger("grpc._common").addFilter(_GrpcDeserializeFilter(rejects))
        _grpc_filter_installed = True
