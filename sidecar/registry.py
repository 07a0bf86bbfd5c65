"""The models of an upgrade plan: which are loaded, verified, active or retired.

The answer to a request depends only on the plan and the request's block
height (sidecar.plan). What this module adds is *availability*: it loads each
entry (hash-checked before TensorFlow touches it, then self-checked against
the entry's own golden vectors, exactly as at start-up) on a background
thread, off the serving path, and a request whose model is not verified gets
Unavailable naming the version — never another model's answer.

One manager thread does every load, unload and plan reload; request threads
only read state under a short lock and, for a model that is not loaded (a
replayed height), ask the manager for it and wait within their deadline.
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

from sidecar import plan as plan_lib
from sidecar import scorer as scorer_lib

DEFAULT_MAX_LOADED = 3
DEFAULT_RETIRE_AFTER_BLOCKS = 1000
DEFAULT_POLL_S = 10.0
# A model that served a call this recently is not unloaded to make room for
# staging, so a replay and the staging of upcoming models cannot evict each
# other in a loop.
IDLE_BEFORE_EVICT_S = 30.0

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


class Registry:
    """Serves an upgrade plan; thread-safe. start() must be called before use."""

    def __init__(
        self,
        plan: plan_lib.Plan,
        *,
        max_loaded: int = DEFAULT_MAX_LOADED,
        retire_after_blocks: int = DEFAULT_RETIRE_AFTER_BLOCKS,
        poll_s: float = DEFAULT_POLL_S,
        observer: Observer | None = None,
        loader: Callable[[plan_lib.Entry], scorer_lib.Scorer] | None = None,
    ):
        if max_loaded < 1:
            raise ValueError("max_loaded must be at least 1")
        self._plan = plan
        self._max_loaded = max_loaded
        self._retire_after = retire_after_blocks
        self._poll_s = poll_s
        self._observer = observer
        self._loader = loader or _load_entry
        self._lock = threading.Lock()
        self._highest = -1  # highest block height of any request; -1 before the first
        self._loaded: dict[tuple, scorer_lib.Scorer] = {}
        self._last_used: dict[tuple, float] = {}
        self._ever_loaded: set[tuple] = set()
        self._rejected: dict[tuple, str] = {}
        self._demands: dict[tuple, threading.Event] = {}
        self._plan_error = ""
        # Heights at which some entry changes state: crossing one wakes the manager.
        self._next_event_height = 0
        self._wake = threading.Event()
        self._reload_requested = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- start, stop, reload -----------------------------------------------------------

    def start(self, background: bool = True) -> None:
        """Loads the first models synchronously, then hands over to the manager thread.

        Raises ScorerError if no entry of the plan could be verified: a
        sidecar that can serve nothing must not start.
        """
        self._reconcile()
        with self._lock:
            loaded = bool(self._loaded)
            failures = [f"{k[0]}: {why}" for k, why in self._rejected.items()]
        if not loaded:
            if len(failures) == 1 and len(self._plan.entries) == 1:
                (why,) = self._rejected.values()
                raise scorer_lib.ScorerError(why)
            raise scorer_lib.ScorerError("no model of the upgrade plan could be verified: " + "; ".join(failures))
        if background:
            self._thread = threading.Thread(target=self._run, name="plan-manager", daemon=True)
            self._thread.start()

    def request_reload(self) -> None:
        """Re-read the plan file now and retry rejected entries (SIGHUP)."""
        with self._lock:
            self._reload_requested = True
        self._wake.set()

    def close(self) -> None:
        with self._lock:
            self._stopping = True
            scorers = list(self._loaded.values())
            self._loaded.clear()
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
        """The verdict of the plan's model for `block_height` (None: no height given)."""
        return self._with_scorer(block_height, deadline, lambda s: s.score(values, contributions, deadline))

    def scorer_for(
        self, block_height: int | None, deadline: float | None = None, observe: bool = True
    ) -> scorer_lib.Scorer:
        """The verified scorer serving `block_height`, loading it within `deadline` if need be.

        `observe`: the height counts as seen (moves the active model and what
        a plan change may no longer rewrite); False for checks and queries.
        """
        entry = self._entry_for(block_height, observe)
        return self._ensure_loaded(entry, deadline)

    def scorer_for_version(self, version: str, deadline: float | None = None) -> scorer_lib.Scorer:
        with self._lock:
            entry = next((e for e in self._plan.entries if e.version == version), None)
            if entry is None:
                raise UnknownVersion(f"no model {version!r} in the upgrade plan ({self._plan.describe_heights()})")
        return self._ensure_loaded(entry, deadline)

    def loaded_scorers(self) -> list[scorer_lib.Scorer]:
        """Every verified model, in plan order."""
        with self._lock:
            return [self._loaded[e.key] for e in self._plan.entries if e.key in self._loaded]

    def _picked(self, version: str | None, block_height: int | None, deadline: float | None) -> scorer_lib.Scorer | None:
        if version and block_height:
            raise InvalidHeight("give a model version or a block height, not both")
        if version:
            return self.scorer_for_version(version, deadline)
        if block_height is not None:
            return self.scorer_for(block_height, deadline, observe=False)
        return None

    def verify_vector(
        self, name: str, deadline: float | None = None, version: str | None = None, block_height: int | None = None
    ) -> scorer_lib.Verification:
        """A golden vector on the picked model, or on every loaded model that has it.

        Each model is checked against its own golden vectors; on failure each
        difference names the model. The hashes reported are those of the model
        serving the highest height seen, when it is among the models checked.
        """
        picked = self._picked(version, block_height, deadline)
        if picked is not None:
            return picked.verify_vector(name, deadline)
        scorers = [s for s in self.loaded_scorers() if s.has_vector(name)]
        if not scorers:
            known = sorted({n for s in self.loaded_scorers() for n in s.vector_names()})
            raise scorer_lib.UnknownVector(f"unknown test vector {name!r}; known: {', '.join(known)}")
        results = [(s, s.verify_vector(name, deadline)) for s in scorers]
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
        picked = self._picked(version, block_height, deadline)
        if picked is None:
            picked = self._ensure_loaded(self.current()[0], deadline)
        return picked.verify_custom(values, expected_output_hash, deadline)

    def _with_scorer(self, block_height, deadline, call):
        # A model can be unloaded between lookup and call (retired, or evicted
        # for a replay); it then refuses with ModelError and is looked up again.
        for _ in range(3):
            scorer = self.scorer_for(block_height, deadline)
            try:
                return call(scorer)
            except scorer_lib.model_lib.ModelError:
                if not scorer.closed:
                    raise
        raise Unavailable(f"model {scorer.model_version} was unloaded while serving; retry")

    def _entry_for(self, block_height: int | None, observe: bool) -> plan_lib.Entry:
        with self._lock:
            plan = self._plan
            if block_height is None:
                if plan.requires_height:
                    raise NeedsHeight(
                        "the request has no block height (metadata.block_height) but the upgrade plan switches "
                        f"models by height ({plan.describe_heights()})"
                    )
                entry = plan.entries[0]
            else:
                if block_height < 0:
                    raise InvalidHeight(f"block height {block_height} is negative")
                entry = plan.entry_for(block_height)
                if observe and block_height > self._highest:
                    self._highest = block_height
                    if block_height >= self._next_event_height:
                        self._wake.set()
        return entry

    def _ensure_loaded(self, entry: plan_lib.Entry, deadline: float | None) -> scorer_lib.Scorer:
        key = entry.key
        with self._lock:
            scorer = self._verified_locked(entry)
            if scorer is not None:
                return scorer
            if self._stopping:
                raise Unavailable(f"model {entry.version} is not loaded and the sidecar is shutting down")
            done = self._demands.get(key)
            if done is None:
                done = self._demands[key] = threading.Event()
        self._wake.set()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        done.wait(timeout)
        with self._lock:
            scorer = self._verified_locked(entry)
            if scorer is not None:
                return scorer
        raise Unavailable(
            f"model {entry.version} (activation height {entry.activation_height}) is not loaded yet; "
            "it is being loaded and verified, retry"
        )

    def _verified_locked(self, entry: plan_lib.Entry) -> scorer_lib.Scorer | None:
        """The entry's loaded model (marked as just used); Unavailable if it was rejected; None if not loaded."""
        scorer = self._loaded.get(entry.key)
        if scorer is not None:
            self._last_used[entry.key] = time.monotonic()
            return scorer
        if entry.key in self._rejected:
            raise Unavailable(
                f"model {entry.version} (activation height {entry.activation_height}) was rejected: "
                f"{self._rejected[entry.key]}"
            )
        return None

    # -- what operators see --------------------------------------------------------------

    @property
    def highest_height(self) -> int:
        return self._highest

    @property
    def plan(self) -> plan_lib.Plan:
        return self._plan

    @property
    def plan_error(self) -> str:
        """Why the last plan file read was refused; empty if it was adopted."""
        return self._plan_error

    def current(self) -> tuple[plan_lib.Entry, scorer_lib.Scorer | None]:
        """The entry serving the highest height seen (height 0's before any request), and its model if loaded."""
        with self._lock:
            entry = self._plan.entry_for(max(self._highest, 0))
            return entry, self._loaded.get(entry.key)

    def statuses(self) -> list[EntryStatus]:
        with self._lock:
            return self._statuses_locked()

    def _statuses_locked(self) -> list[EntryStatus]:
        plan, highest = self._plan, max(self._highest, 0)
        current = plan.entry_for(highest)
        out = []
        for i, e in enumerate(plan.entries):
            loaded = self._loaded.get(e.key)
            model_hash = e.expected_hash or (loaded.model_hash if loaded else "")
            superseded = i + 1 < len(plan.entries) and plan.entries[i + 1].activation_height <= highest
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
        next_poll = time.monotonic() + self._poll_s
        while True:
            self._wake.wait(max(0.0, next_poll - time.monotonic()))
            self._wake.clear()
            with self._lock:
                if self._stopping:
                    return
                forced, self._reload_requested = self._reload_requested, False
            if forced or time.monotonic() >= next_poll:
                next_poll = time.monotonic() + self._poll_s
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
            self._refuse_plan("", "invalid_plan", str(e), forced)
            return
        with self._lock:
            if new.digest == self._plan.digest and not forced:
                self._plan_error = ""  # the file is back to the plan in force
                return
            conflict = plan_lib.history_conflict(self._plan, new, self._highest)
            if conflict is None:
                self._plan, self._plan_error = new, ""
                # A new or re-sent plan gives every rejected entry a fresh chance
                # (the operator may have fixed its files); models it no longer
                # names are unloaded.
                self._rejected.clear()
                keep = {e.key for e in new.entries}
                dropped = [self._loaded.pop(k) for k in list(self._loaded) if k not in keep]
                self._next_event_height = 0
        if conflict is not None:
            version, why = conflict
            self._refuse_plan(version, "history_rewrite", why, forced)
            return
        for s in dropped:
            s.close()
        logging.info("upgrade plan %s adopted: %s", source, new.describe_heights())

    def _refuse_plan(self, version: str, reason: str, why: str, forced: bool) -> None:
        with self._lock:
            repeated = self._plan_error == why
            self._plan_error = why
        if repeated and not forced:
            return  # a broken file is polled every few seconds; say it once
        logging.error("upgrade plan refused, still serving the previous plan: %s", why)
        if self._observer is not None:
            self._observer.record_rejection(version, reason)

    def _reconcile(self) -> None:
        """Serves waiting requests first, then retires, then stages; one load at a time."""
        while True:
            with self._lock:
                if self._stopping:
                    return
                job = self._next_job_locked()
            if job is None:
                return
            action, entry = job
            if action == "unload":
                self._unload(entry)
            elif not self._stage(entry, demanded=action == "demand"):
                # Every slot holds a model that is wanted or was used lately;
                # staging is retried at the next poll or wake-up.
                return

    def _next_job_locked(self) -> tuple[str, plan_lib.Entry] | None:
        plan = self._plan
        by_key = {e.key: e for e in plan.entries}
        for key in list(self._demands):
            if key not in by_key or key in self._loaded or key in self._rejected:
                self._demands.pop(key).set()
        for key in self._demands:
            return "demand", by_key[key]
        highest = max(self._highest, 0)
        cur = plan.index_for(highest)
        for i, e in enumerate(plan.entries[:-1]):
            retire_at = plan.entries[i + 1].activation_height + self._retire_after
            if e.key in self._loaded and highest >= retire_at and i < cur:
                return "unload", e
        wanted = self._wanted_locked()
        for e in wanted:
            if e.key not in self._loaded and e.key not in self._rejected:
                return "stage", e
        # Nothing to do until a request crosses the next activation or retirement height.
        events = [e.activation_height for e in plan.entries if e.activation_height > highest]
        events += [plan.entries[i + 1].activation_height + self._retire_after for i in range(len(plan.entries) - 1)]
        events = [h for h in events if h > highest]
        self._next_event_height = min(events) if events else 2**63
        return None

    def _wanted_locked(self) -> list[plan_lib.Entry]:
        """What should be loaded: the current model and the upcoming ones, nearest first."""
        entries = self._plan.entries
        if self._highest < 0:
            # No height seen yet: a restarted validator is most likely near the
            # chain's tip, so the newest models come first.
            return list(reversed(entries))[: self._max_loaded]
        return list(entries[self._plan.index_for(self._highest):])[: self._max_loaded]

    def _idle(self, key: tuple, now: float) -> bool:
        return now - self._last_used.get(key, 0.0) >= IDLE_BEFORE_EVICT_S

    def _make_room(self, for_entry: plan_lib.Entry, demanded: bool) -> bool:
        """Unloads one model if the bound is reached; False if nothing may go."""
        with self._lock:
            if len(self._loaded) < self._max_loaded:
                return True
            now = time.monotonic()
            wanted = {e.key for e in self._wanted_locked()}
            current = self._plan.entry_for(max(self._highest, 0)).key
            candidates = [k for k in self._loaded if k != for_entry.key and k != current]
            if not demanded:
                candidates = [k for k in candidates if k not in wanted and self._idle(k, now)]
            if not candidates:
                return False
            # Not-wanted before wanted, then least recently used.
            victim = min(candidates, key=lambda k: (k in wanted, self._last_used.get(k, 0.0)))
            scorer = self._loaded.pop(victim)
        logging.info("unloading model %s to stay within %d loaded models", victim[0], self._max_loaded)
        scorer.close()
        return True

    def _unload(self, entry: plan_lib.Entry) -> None:
        with self._lock:
            scorer = self._loaded.pop(entry.key, None)
        if scorer is not None:
            logging.info("retiring model %s: its successor has been active for %d blocks",
                         entry.version, self._retire_after)
            scorer.close()

    def _stage(self, entry: plan_lib.Entry, demanded: bool) -> bool:
        """Loads and verifies `entry` (or rejects it); False if there was no room to try."""
        if not self._make_room(entry, demanded):
            return False
        t0 = time.monotonic()
        logging.info("staging model %s from %s (activation height %d)", entry.version, entry.path,
                     entry.activation_height)
        try:
            scorer = self._loader(entry)
        except scorer_lib.ScorerError as e:
            self._reject(entry, e.kind, str(e))
            return True
        with self._lock:
            still_planned = any(e.key == entry.key for e in self._plan.entries)
            if still_planned and not self._stopping:
                self._loaded[entry.key] = scorer
                self._ever_loaded.add(entry.key)
                self._last_used.setdefault(entry.key, 0.0)
            done = self._demands.pop(entry.key, None)
        if done is not None:
            done.set()
        if not still_planned or self._stopping:
            scorer.close()
            return True
        logging.info("model %s verified in %.2fs (hash %s)", entry.version, time.monotonic() - t0, scorer.model_hash)
        return True

    def _reject(self, entry: plan_lib.Entry, kind: str, why: str) -> None:
        with self._lock:
            self._rejected[entry.key] = why
            done = self._demands.pop(entry.key, None)
        if done is not None:
            done.set()
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
