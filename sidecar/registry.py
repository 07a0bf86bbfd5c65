"""The models of an upgrade plan: which are loaded, verified, active or retired.

The answer to a request depends only on the plan and the request's block
height (sidecar.plan). What this module adds is *availability*: it loads each
entry (hash-checked before TensorFlow touches it, then self-checked against
the entry's own golden vectors, exactly as at start-up) on a background
thread, off the serving path, and a request whose model is not verified gets
Unavailable naming the version — never another model's answer.

Which models should be loaded is one pure function (sidecar.policy) of the
plan, the chain's position, recent use, pending demands and the limits; one
manager thread makes reality match it (every load, unload and plan reload).
Request threads only read state under a short lock and, for a model that is
not loaded (a replayed height), demand it and wait within their deadline
(never longer than max_wait_s); close() wakes them.
"""

import dataclasses
import enum
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Protocol

import numpy as np
from absl import logging

from sidecar import model as model_lib
from sidecar import plan as plan_lib
from sidecar import policy
from sidecar import scorer as scorer_lib

DEFAULT_MAX_LOADED = 3
DEFAULT_RETIRE_AFTER_BLOCKS = 1000
DEFAULT_POLL_S = 10.0
# A model that served a request within the last DEFAULT_IDLE_S seconds or
# DEFAULT_IDLE_REQUESTS requests is in use: neither retired nor evicted for
# staging, so a replay settles instead of unloading what it uses.
DEFAULT_IDLE_S = 30.0
DEFAULT_IDLE_REQUESTS = 100
# How far above the highest height served a request may be (OUT_OF_RANGE
# beyond): one caller cannot make the plan's past reach 2^63.
DEFAULT_MAX_BLOCKS_AHEAD = 10_000
# No request waits longer than this for a model to load, deadline or not.
DEFAULT_MAX_WAIT_S = 60.0

ENV_USE_TENSORFLOW = "VEID_USE_TENSORFLOW"
ENV_MODEL_PATH = "VEID_INFERENCE_MODEL_PATH"
ENV_MODEL_HASH = "VEID_INFERENCE_MODEL_HASH"
ENV_MODEL_VERSION = "VEID_INFERENCE_MODEL_VERSION"
ENV_UPGRADE_PLAN = "VEID_INFERENCE_UPGRADE_PLAN"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class State(enum.Enum):
    PENDING = "pending"  # current or upcoming, not loaded (yet)
    VERIFIED = "verified"  # loaded and self-checked, not the model of the highest height seen
    ACTIVE = "active"  # loaded, self-checked, serves the highest height seen
    RETIRED = "retired"  # superseded and not loaded (unloaded, or never needed since start)
    REJECTED = "rejected"  # failed its checks; `reason` says why


class NeedsHeight(LookupError):
    """The plan has several models and the request named no block height (FAILED_PRECONDITION)."""

    def __str__(self) -> str:
        return str(self.args[0])


class Unavailable(RuntimeError):
    """The model for this height is not verified (yet), or was rejected (UNAVAILABLE)."""


class InvalidHeight(ValueError):
    """A negative block height (INVALID_ARGUMENT)."""


class HeightOutOfRange(ValueError):
    """A block height too far above the highest height served (OUT_OF_RANGE)."""


class UnknownVersion(LookupError):
    """No plan entry has the requested version (NOT_FOUND)."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclasses.dataclass(frozen=True, slots=True)
class EntryStatus:
    entry: plan_lib.Entry
    state: State
    reason: str  # why it was rejected; empty otherwise
    # The hash the plan expects, or the verified model's own when the plan
    # pins none (the one-entry plan of --model-path without --expected-hash).
    model_hash: str


class Observer(Protocol):
    """What the registry tells the metrics; sidecar.metrics.Metrics implements it."""

    def record_rejection(self, version: str, reason: str) -> None: ...


@dataclasses.dataclass(eq=False, slots=True)
class _Demand:
    """Requests waiting for one model. Before waking them the reconciler pins the
    model once per waiter, so it cannot be unloaded before they have used it."""

    event: threading.Event = dataclasses.field(default_factory=threading.Event)
    waiters: int = 0
    scorer: scorer_lib.Scorer | None = None  # set (and pinned) when loaded
    why: str = ""  # set when it was rejected, left the plan, or the registry closed


class Registry:
    """Serves an upgrade plan; thread-safe. start() must be called before use.

    `start_height`: where the chain is at start-up (-1: unknown); its model is
    loaded and self-checked before start() returns. `max_blocks_ahead`: how far
    above the highest height served (or `start_height`) a request may be.
    `idle_s`, `idle_requests`: a model that served a request within either is
    in use, and neither retired nor evicted. `max_wait_s` bounds every wait for
    a model to load, whatever the caller's deadline.
    """

    def __init__(
        self,
        plan: plan_lib.Plan,
        *,
        max_loaded: int = DEFAULT_MAX_LOADED,
        retire_after_blocks: int = DEFAULT_RETIRE_AFTER_BLOCKS,
        poll_s: float = DEFAULT_POLL_S,
        observer: Observer | None = None,
        loader: Callable[[plan_lib.Entry], scorer_lib.Scorer] | None = None,
        start_height: int = -1,
        max_blocks_ahead: int = DEFAULT_MAX_BLOCKS_AHEAD,
        idle_s: float = DEFAULT_IDLE_S,
        idle_requests: int = DEFAULT_IDLE_REQUESTS,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_loaded < 1:
            raise ValueError("max_loaded must be at least 1")
        self._plan = plan
        self._limits = policy.Limits(max_loaded, retire_after_blocks, idle_requests, idle_s)
        self._poll_s = poll_s
        self._observer = observer
        self._loader = loader or _load_entry
        self._start_height = start_height
        self._max_ahead = max_blocks_ahead
        self._max_wait = max_wait_s
        self._clock = clock
        self._lock = threading.Lock()
        self._highest = -1  # highest block height of any *served* request; -1 before the first
        self._requests = 0  # requests served: "recently used" is measured in these, not only in seconds
        self._loaded: dict[tuple, scorer_lib.Scorer] = {}
        self._last_use: dict[tuple, policy.Use] = {}
        self._ever_loaded: set[tuple] = set()
        self._rejected: dict[tuple, str] = {}
        self._demands: dict[tuple, _Demand] = {}  # insertion order is arrival order
        self._pins: dict[tuple, int] = {}
        self._plan_error = ""
        self._refusal: tuple = ()  # what was refused last: logged and counted once
        # Crossing this height may change the aspired set: a request that does wakes the manager.
        self._next_event_height = 0
        self._wake = threading.Event()
        self._reload_requested = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- start, stop, reload -----------------------------------------------------------

    def start(self, background: bool = True) -> None:
        """Loads the model of the start height (unknown: the newest that verifies), then
        hands over to the manager thread, which stages the others.

        Raises ScorerError if that model fails: a sidecar that cannot serve
        the heights the chain is at must not start. Any other entry that fails
        is only `rejected`: it may be fixed before it is needed.
        """
        entries = self._plan.entries
        if self._start_height >= 0:
            first = [self._plan.entry_for(self._start_height)]
        else:
            first = list(reversed(entries))
        for entry in first:
            self._stage(entry)
            if entry.key in self._loaded:
                break
        if not self._loaded:
            failures = [f"{k[0]}: {why}" for k, why in self._rejected.items()]
            if len(failures) == 1:
                raise scorer_lib.ScorerError(next(iter(self._rejected.values())))
            raise scorer_lib.ScorerError("no model of the upgrade plan could be verified: " + "; ".join(failures))
        if background:
            self._thread = threading.Thread(target=self._run, name="plan-manager", daemon=True)
            self._thread.start()
        else:
            self._reconcile()

    def request_reload(self) -> None:
        """Re-read the plan file now and retry rejected entries (SIGHUP)."""
        with self._lock:
            self._reload_requested = True
        self._wake.set()

    def close(self) -> None:
        """Unloads every model; waiting requests wake at once with Unavailable."""
        with self._lock:
            self._stopping = True
            scorers = list(self._loaded.values())
            self._loaded.clear()
            for d in self._demands.values():
                d.why = "the sidecar is shutting down"
                d.event.set()
            self._demands.clear()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        for s in scorers:
            s.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the request path ----------------------------------------------------------------

    def score(
        self,
        values: Iterable[float] | np.ndarray,
        contributions: bool = False,
        deadline: float | None = None,
        block_height: int | None = None,
    ) -> scorer_lib.Score:
        """The verdict of the plan's model for `block_height` (None: no height given).

        Only an answered request counts as served and moves the highest
        height (what a plan change may no longer rewrite); an invalid one
        does not, and one too far ahead is refused (HeightOutOfRange).
        """
        return self._call(block_height, None, deadline, lambda s: s.score(values, contributions, deadline), True)

    def scorer_for(self, block_height: int | None, deadline: float | None = None) -> scorer_lib.Scorer:
        """The verified scorer serving `block_height`, loading it within `deadline` if need be.

        Not a request served: the highest height does not move."""
        return self._call(block_height, None, deadline, lambda s: s, False)

    def scorer_for_version(self, version: str, deadline: float | None = None) -> scorer_lib.Scorer:
        return self._call(None, version, deadline, lambda s: s, False)

    def loaded_scorers(self) -> list[scorer_lib.Scorer]:
        """Every verified model, in plan order."""
        with self._lock:
            return [self._loaded[e.key] for e in self._plan.entries if e.key in self._loaded]

    def verify_vector(
        self, name: str, deadline: float | None = None, version: str | None = None, block_height: int | None = None
    ) -> scorer_lib.Verification:
        """A golden vector on the picked model, or on every loaded model that has it.

        Each model is checked against its own golden vectors; on failure each
        difference names the model. The hashes reported are those of the model
        serving the highest height seen, when it is among the models checked.
        """
        if version or block_height is not None:
            return self._picked(version, block_height, deadline, lambda s: s.verify_vector(name, deadline))
        results = []
        for s in self.loaded_scorers():
            if s.has_vector(name):
                try:
                    results.append((s, s.verify_vector(name, deadline)))
                except model_lib.ModelError:
                    if not s.closed:
                        raise  # else it was unloaded meanwhile: it is no longer among the models checked
        if not results:
            known = sorted({n for s in self.loaded_scorers() for n in s.vector_names()})
            raise scorer_lib.UnknownVector(f"unknown test vector {name!r}; known: {', '.join(known)}")
        current = self.current()[1]
        _, shown = next(((s, v) for s, v in results if s is current), results[0])
        diffs = tuple(f"{s.model_version}: {d}" for s, v in results for d in v.differences)
        return dataclasses.replace(shown, passed=all(v.passed for _, v in results), differences=diffs)

    def verify_custom(
        self,
        values: Iterable[float] | np.ndarray,
        expected_output_hash: str = "",
        deadline: float | None = None,
        version: str | None = None,
        block_height: int | None = None,
    ) -> scorer_lib.Verification:
        """A custom input on the picked model, by default the one serving the highest height seen."""
        if not version and block_height is None:
            version = self.current()[0].version
        return self._picked(version, block_height, deadline,
                            lambda s: s.verify_custom(values, expected_output_hash, deadline))

    def _picked(self, version, block_height, deadline, call):
        if version and block_height:
            raise InvalidHeight("give a model version or a block height, not both")
        return self._call(block_height if not version else None, version or None, deadline, call, False)

    def _call(self, block_height: int | None, version: str | None, deadline: float | None, call, served: bool):
        """call(scorer) on the model for the height (or version); counts it as served if `served`.

        A model can be unloaded between lookup and call (a plan change, or a
        fast-path lookup racing an eviction); it then refuses with ModelError
        and is looked up again.
        """
        for _ in range(3):
            with self._lock:
                entry = self._entry_locked(block_height, version, served)
                scorer = self._loaded.get(entry.key)
            pinned = scorer is None
            if pinned:
                scorer = self._wait_for(entry, deadline)
            try:
                result = call(scorer)
            except model_lib.ModelError:
                if not scorer.closed:
                    raise
                continue
            finally:
                if pinned:
                    self._unpin(entry.key)
            if served:
                self._served(entry.key, block_height)
            return result
        raise Unavailable(f"model {entry.version} was unloaded while serving; retry")

    def _entry_locked(self, block_height: int | None, version: str | None, check_ahead: bool) -> plan_lib.Entry:
        plan = self._plan
        if version is not None:
            entry = next((e for e in plan.entries if e.version == version), None)
            if entry is None:
                raise UnknownVersion(f"no model {version!r} in the upgrade plan ({plan.describe_heights()})")
            return entry
        if block_height is None:
            if plan.requires_height:
                raise NeedsHeight(
                    "the request has no block height (metadata.block_height) but the upgrade plan switches "
                    f"models by height ({plan.describe_heights()})"
                )
            return plan.entries[0]
        if block_height < 0:
            raise InvalidHeight(f"block height {block_height} is negative")
        if check_ahead:
            base = max(self._highest, self._start_height)
            if base >= 0 and block_height - base > self._max_ahead:
                raise HeightOutOfRange(
                    f"block height {block_height} is more than {self._max_ahead} blocks (--max-blocks-ahead) above "
                    f"the highest height served ({base}); refused so that one request cannot move the plan's history"
                )
        return plan.entry_for(block_height)

    def _served(self, key: tuple, block_height: int | None) -> None:
        now = self._clock()
        with self._lock:
            self._requests += 1
            self._last_use[key] = policy.Use(self._requests, now)
            if block_height is not None and block_height > self._highest:
                self._highest = block_height
                if block_height >= self._next_event_height:
                    self._wake.set()

    def _wait_for(self, entry: plan_lib.Entry, deadline: float | None) -> scorer_lib.Scorer:
        """Demands `entry` and waits (at most max_wait_s) until it is loaded; returns it pinned."""
        key = entry.key
        with self._lock:
            scorer = self._loaded.get(key)
            if scorer is not None:
                self._pins[key] = self._pins.get(key, 0) + 1
                return scorer
            if key in self._rejected:
                raise Unavailable(
                    f"model {entry.version} (activation height {entry.activation_height}) was rejected: "
                    f"{self._rejected[key]}"
                )
            if self._stopping:
                raise Unavailable(f"model {entry.version} is not loaded and the sidecar is shutting down")
            d = self._demands.get(key)
            if d is None:
                d = self._demands[key] = _Demand()
            d.waiters += 1
        self._wake.set()
        timeout = self._max_wait
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - self._clock()))
        d.event.wait(timeout)
        with self._lock:
            if d.scorer is not None:
                return d.scorer  # pinned for this waiter by _stage
            d.waiters -= 1
        if d.why:
            raise Unavailable(f"model {entry.version} (activation height {entry.activation_height}): {d.why}")
        raise Unavailable(
            f"model {entry.version} (activation height {entry.activation_height}) is not loaded yet; "
            "it is being loaded and verified, retry"
        )

    def _unpin(self, key: tuple) -> None:
        with self._lock:
            n = self._pins.get(key, 0) - 1
            if n > 0:
                self._pins[key] = n
                return
            self._pins.pop(key, None)
            waiting = bool(self._demands)
        if waiting:
            self._wake.set()  # a demand may have been waiting for this slot

    # -- what operators see --------------------------------------------------------------

    @property
    def highest_height(self) -> int:
        return self._highest

    @property
    def plan(self) -> plan_lib.Plan:
        return self._plan

    @property
    def plan_error(self) -> str:
        """Why the plan file on disk was refused; empty while it is the plan in force."""
        return self._plan_error

    def current(self) -> tuple[plan_lib.Entry, scorer_lib.Scorer | None]:
        """The entry serving the chain's position (height 0's before it is known), and its model if loaded."""
        with self._lock:
            entry = self._plan.entry_for(max(self._position_locked(), 0))
            return entry, self._loaded.get(entry.key)

    def _position_locked(self) -> int:
        return self._highest if self._highest >= 0 else self._start_height

    def statuses(self) -> list[EntryStatus]:
        with self._lock:
            plan, position = self._plan, max(self._position_locked(), 0)
            current = plan.entry_for(position)
            out = []
            for i, e in enumerate(plan.entries):
                loaded = self._loaded.get(e.key)
                model_hash = e.expected_hash or (loaded.model_hash if loaded else "")
                superseded = i + 1 < len(plan.entries) and plan.entries[i + 1].activation_height <= position
                if e.key in self._rejected:
                    state, reason = State.REJECTED, self._rejected[e.key]
                elif loaded is not None:
                    state, reason = (State.ACTIVE if e is current else State.VERIFIED), ""
                elif superseded or e.key in self._ever_loaded:
                    state, reason = State.RETIRED, ""
                else:
                    state, reason = State.PENDING, ""
                out.append(EntryStatus(e, state, reason, model_hash))
            return out

    # -- the manager ---------------------------------------------------------------------

    def _run(self) -> None:
        next_poll = self._clock() + self._poll_s
        # Stage what start() left to this thread now, not at the first poll:
        # with --plan-poll-interval=1h the other entries would stay pending.
        self._wake.set()
        while True:
            self._wake.wait(max(0.0, next_poll - self._clock()))
            self._wake.clear()
            with self._lock:
                if self._stopping:
                    return
                forced, self._reload_requested = self._reload_requested, False
            if forced or self._clock() >= next_poll:
                next_poll = self._clock() + self._poll_s
                self._reload(forced)
            try:
                self._reconcile()
            except Exception:  # pylint: disable=broad-except
                # The manager must survive anything a model directory does to it.
                logging.exception("upgrade plan manager: unexpected error; continuing")

    def _reload(self, forced: bool) -> None:
        source = self._plan.source
        if source is None:
            return
        try:
            new = plan_lib.load(source)
        except plan_lib.PlanError as e:
            self._refuse_plan(("invalid_plan", str(e)), "", "invalid_plan", str(e), forced)
            return
        with self._lock:
            if new.digest == self._plan.digest and not forced:
                self._plan_error, self._refusal = "", ()  # the file is back to the plan in force
                return
            conflict = plan_lib.history_conflict(self._plan, new, self._highest)
            if conflict is None:
                self._plan, self._plan_error, self._refusal = new, "", ()
                # A new or re-sent plan gives every rejected entry a fresh chance
                # (the operator may have fixed its files); models it no longer
                # names are unloaded.
                self._rejected.clear()
                keep = {e.key for e in new.entries}
                dropped = [self._loaded.pop(k) for k in list(self._loaded) if k not in keep]
                self._next_event_height = 0
        if conflict is not None:
            version, why = conflict
            self._refuse_plan(("history_rewrite", new.digest), version, "history_rewrite", why, forced)
            return
        for s in dropped:
            s.close()
        logging.info("upgrade plan %s adopted: %s", source, new.describe_heights())

    def _refuse_plan(self, what: tuple, version: str, reason: str, why: str, forced: bool) -> None:
        # `what` identifies the refused file and reason without the message,
        # which names the highest height and so changes with every block.
        with self._lock:
            repeated = self._refusal == what
            self._plan_error, self._refusal = why, what
        if repeated and not forced:
            return  # polled every few seconds: say it once per file content
        logging.error("upgrade plan refused, still serving the previous plan: %s", why)
        if self._observer is not None:
            self._observer.record_rejection(version, reason)

    def _reconcile(self) -> None:
        """Makes the loaded models policy.aspired()'s: unloads first, then loads one at a time."""
        while True:
            with self._lock:
                if self._stopping:
                    return
                self._settle_demands_locked()
                view = self._view_locked()
                want = policy.aspired(view, self._limits)
                wanted = {e.key for e in want}
                drop = [(k, self._loaded.pop(k)) for k in list(self._loaded)
                        if k not in wanted and not self._pins.get(k)]
                stage = next((e for e in want if e.key not in self._loaded and e.key not in self._rejected), None)
                if stage is not None and len(self._loaded) >= self._limits.max_loaded:
                    stage = None  # every slot is pinned; an unpin wakes us
                if stage is None and not drop:
                    self._next_event_height = policy.next_event_height(self._plan, view.position, self._limits)
            for key, scorer in drop:
                self._log_unload(key, view)
                scorer.close()
            if stage is not None:
                self._stage(stage)
            elif not drop:
                return

    def _settle_demands_locked(self) -> None:
        """Wakes the waiters of models that will not be loaded (or already are)."""
        planned = {e.key for e in self._plan.entries}
        for key in list(self._demands):
            d = self._demands[key]
            if key not in planned:
                d.why = "no longer in the upgrade plan"
            elif key in self._rejected:
                d.why = f"rejected: {self._rejected[key]}"
            elif key in self._loaded:
                self._fulfil_locked(key, d, self._loaded[key])
                continue
            else:
                continue
            del self._demands[key]
            d.event.set()

    def _fulfil_locked(self, key: tuple, d: _Demand, scorer: scorer_lib.Scorer) -> None:
        del self._demands[key]
        # A model loaded on demand is about to be used: it counts as used now,
        # and is pinned for each waiter so nothing unloads it before they ran.
        self._last_use[key] = policy.Use(self._requests, self._clock())
        d.scorer = scorer
        if d.waiters:
            self._pins[key] = self._pins.get(key, 0) + d.waiters
        d.event.set()

    def _view_locked(self) -> policy.View:
        return policy.View(
            plan=self._plan,
            position=self._position_locked(),
            loaded=frozenset(self._loaded),
            rejected=frozenset(self._rejected),
            demanded=tuple(self._demands),
            pinned=frozenset(self._pins),
            last_use=dict(self._last_use),
            requests=self._requests,
            now=self._clock(),
        )

    def _log_unload(self, key: tuple, view: policy.View) -> None:
        index = next((i for i, e in enumerate(view.plan.entries) if e.key == key), None)
        if index is None:
            logging.info("unloading model %s: no longer in the upgrade plan", key[0])
        elif policy.retirable(view.plan, index, view.position, self._limits):
            logging.info("retiring model %s: its successor has been active for %d blocks and it served no "
                         "request lately", key[0], self._limits.retire_after_blocks)
        else:
            logging.info("unloading model %s to stay within %d loaded models", key[0], self._limits.max_loaded)

    def _stage(self, entry: plan_lib.Entry) -> None:
        """Loads and verifies `entry`, or rejects it."""
        t0 = self._clock()
        logging.info("staging model %s from %s (activation height %d)", entry.version, entry.path,
                     entry.activation_height)
        try:
            scorer = self._loader(entry)
        except scorer_lib.ScorerError as e:
            self._reject(entry, e.kind, str(e))
            return
        except Exception as e:  # pylint: disable=broad-except
            # Whatever a model directory makes the loader raise is a rejection
            # with a reason, never a traceback at start-up or a retry forever.
            self._reject(entry, "load_error", f"{type(e).__name__}: {e}")
            return
        with self._lock:
            keep = not self._stopping and any(e.key == entry.key for e in self._plan.entries)
            if keep:
                self._loaded[entry.key] = scorer
                self._ever_loaded.add(entry.key)
                d = self._demands.get(entry.key)
                if d is not None:
                    self._fulfil_locked(entry.key, d, scorer)
        if not keep:
            scorer.close()
            return
        logging.info("model %s verified in %.2fs (hash %s)", entry.version, self._clock() - t0, scorer.model_hash)

    def _reject(self, entry: plan_lib.Entry, kind: str, why: str) -> None:
        with self._lock:
            self._rejected[entry.key] = why
            d = self._demands.pop(entry.key, None)
            if d is not None:
                d.why = f"rejected: {why}"
                d.event.set()
        logging.error("model %s (activation height %d) rejected: %s", entry.version, entry.activation_height, why)
        if self._observer is not None:
            self._observer.record_rejection(entry.version, kind)


def _load_entry(entry: plan_lib.Entry) -> scorer_lib.Scorer:
    return scorer_lib.Scorer.load(entry.path, expected_hash=entry.expected_hash, expected_version=entry.version)


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    text = env.get(name, "").strip().lower()
    if not text:
        return default
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise scorer_lib.ScorerError(f"{name}={env[name]!r} is not a boolean (use true or false)")


def from_environment(environ: Mapping[str, str] | None = None, **kwargs: Any) -> Registry:
    """A started registry for embedding in another process, configured by environment.

    VEID_USE_TENSORFLOW (default true; false is refused: there is no other
    scorer that agrees with the network); VEID_INFERENCE_UPGRADE_PLAN (a plan
    file; then the three below must be unset) or VEID_INFERENCE_MODEL_PATH
    (default models/trust_score) with the optional pins
    VEID_INFERENCE_MODEL_HASH and VEID_INFERENCE_MODEL_VERSION.
    """
    env = os.environ if environ is None else environ
    if not _env_bool(env, ENV_USE_TENSORFLOW, True):
        raise scorer_lib.ScorerError(
            f"{ENV_USE_TENSORFLOW}={env[ENV_USE_TENSORFLOW]!r}: this scorer only runs the TensorFlow model; "
            "a different scorer would disagree with the network"
        )
    plan_path = env.get(ENV_UPGRADE_PLAN)
    if plan_path:
        clash = [n for n in (ENV_MODEL_PATH, ENV_MODEL_HASH, ENV_MODEL_VERSION) if env.get(n)]
        if clash:
            raise scorer_lib.ScorerError(f"{ENV_UPGRADE_PLAN} names the models; unset {', '.join(clash)}")
        try:
            plan = plan_lib.load(plan_path)
        except plan_lib.PlanError as e:
            raise scorer_lib.ScorerError(str(e), "invalid_plan") from None
    else:
        expected_hash = env.get(ENV_MODEL_HASH) or None
        if expected_hash and not scorer_lib.is_model_hash(expected_hash):
            raise scorer_lib.ScorerError(f"expected model hash {expected_hash!r} is not 64 lowercase hex digits")
        plan = plan_lib.single(
            env.get(ENV_MODEL_PATH) or scorer_lib.DEFAULT_MODEL_PATH,
            env.get(ENV_MODEL_VERSION) or None,
            expected_hash,
        )
    registry = Registry(plan, **kwargs)
    registry.start()
    return registry
