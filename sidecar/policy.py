"""Which models of an upgrade plan should be loaded: one pure function.

TensorFlow Serving separates the *aspired versions* (what should be loaded)
from the manager that loads and unloads; this module is the first half. Given
a snapshot of the registry (sidecar.registry) it returns, in priority order,
the entries that should be loaded; the registry's reconciler unloads every
loaded model not in the answer and loads the first one missing. No threads,
no clocks, no TensorFlow: every case is a unit test (sidecar/registry_test.py).

Priority, highest first, at most `max_loaded` entries, rejected ones skipped:
  1. pinned: handed to a waiting request that has not finished with it yet;
     unloading it would send that request round the loop again;
  2. demanded: a request waits for it (a replayed height), in arrival order;
  3. the entry serving the chain's position (the highest height served, or
     the start height before the first request);
  4. entries in use: one that served a request within the last
     `idle_requests` requests or `idle_s` seconds, most recent first. This is
     what lets a replay settle: retirement and staging only take idle models;
  5. upcoming entries, nearest first (staging ahead of their activation);
  6. older entries already loaded whose successor has not been active for
     `retire_after_blocks` yet (kept, never loaded for that reason alone).
Before the chain's position is known (no request, no start height) every
entry is a candidate for 3, newest first: a restarted validator is most
likely near the tip, and a replay loads what it needs on demand.

Retirement is only the absence from this list: it never makes a height
unservable, since a request for it demands it again (2).
"""

import dataclasses
from collections.abc import Mapping, Sequence

from sidecar import plan as plan_lib

Key = tuple


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    max_loaded: int
    retire_after_blocks: int
    # A model that served a request this recently is in use (either bound suffices).
    idle_requests: int
    idle_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class Use:
    """When an entry last served a request: the request counter's value and a monotonic time."""

    request: int
    time: float


@dataclasses.dataclass(frozen=True, slots=True)
class View:
    """What the registry knows at one instant."""

    plan: plan_lib.Plan
    # The chain's position: the highest height served, else the start height; -1 if unknown.
    position: int
    loaded: frozenset = frozenset()
    rejected: frozenset = frozenset()
    demanded: Sequence[Key] = ()
    pinned: frozenset = frozenset()
    last_use: Mapping[Key, Use] = dataclasses.field(default_factory=dict)
    requests: int = 0  # requests served so far
    now: float = 0.0


def in_use(view: View, key: Key, limits: Limits) -> bool:
    use = view.last_use.get(key)
    if use is None:
        return False
    return view.requests - use.request < limits.idle_requests or view.now - use.time < limits.idle_s


def retirable(plan: plan_lib.Plan, index: int, position: int, limits: Limits) -> bool:
    """The entry's successor has been active for `retire_after_blocks` at `position`."""
    if index + 1 >= len(plan.entries) or position < 0:
        return False
    return position >= plan.entries[index + 1].activation_height + limits.retire_after_blocks


def aspired(view: View, limits: Limits) -> tuple[plan_lib.Entry, ...]:
    """The entries that should be loaded, in priority order (see the module doc)."""
    entries = view.plan.entries
    by_key = {e.key: e for e in entries}
    out: list[plan_lib.Entry] = []

    def add(keys) -> None:
        for k in keys:
            if len(out) >= limits.max_loaded:
                return
            e = by_key.get(k)
            if e is not None and k not in view.rejected and e not in out:
                out.append(e)

    add(k for e in entries if (k := e.key) in view.pinned)
    add(view.demanded)
    if view.position >= 0:
        cur = view.plan.index_for(view.position)
        add([entries[cur].key])
    else:
        cur = -1
        add(e.key for e in reversed(entries))
    recent = sorted((k for k in view.loaded if k in by_key and in_use(view, k, limits)),
                    key=lambda k: -view.last_use[k].request)
    add(recent)
    if cur >= 0:
        add(e.key for e in entries[cur + 1:])
        add(entries[i].key for i in range(cur) if entries[i].key in view.loaded
            and not retirable(view.plan, i, view.position, limits))
    return tuple(out)


def next_event_height(plan: plan_lib.Plan, position: int, limits: Limits) -> int:
    """The lowest height above `position` at which the answer may change without a request's help
    (an activation or a retirement); the manager is woken when a request crosses it."""
    heights = [e.activation_height for e in plan.entries]
    heights += [e.activation_height + limits.retire_after_blocks for e in plan.entries[1:]]
    later = [h for h in heights if h > position]
    return min(later) if later else plan_lib.MAX_HEIGHT
