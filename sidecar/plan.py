"""The upgrade plan: which model serves which block height.

Governance approves a model and its hash, and every validator switches at the
same block height. The plan is that decision as data, a JSON file next to the
models:

    {"entries": [
      {"version": "v1.0.0", "path": "trust_score", "expected_hash": "9b76…", "activation_height": 0},
      {"version": "v1.1.0", "path": "trust_score_v1_1", "expected_hash": "…", "activation_height": 1200}]}

A request at height h is served by the entry with the greatest
activation_height <= h. That is a pure function of the plan and h, so
validators with the same plan agree whatever they have loaded and whenever
they reloaded. This module only parses and answers questions about a plan;
sidecar.registry loads and retires the models it names.
"""

import bisect
import dataclasses
import hashlib
import json
import os
import re

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_ENTRY_KEYS = {"version", "path", "expected_hash", "activation_height"}
_TOP_KEYS = {"entries", "comment"}
# Heights travel as int64 (inference.v1's block_height, activation_height).
MAX_HEIGHT = 2**63 - 1


class PlanError(ValueError):
    """The plan file is unusable; the message names the entry and field."""


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    version: str
    # Absolute: a relative path in the file is resolved against the file's directory.
    path: str
    # None only for the one-entry plan built from --model-path without --expected-hash.
    expected_hash: str | None
    activation_height: int

    @property
    def key(self) -> tuple[str, str | None, str]:
        """What identifies a loaded model: the same key is the same bytes in the same place."""
        return (self.version, self.expected_hash, self.path)


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    entries: tuple[Entry, ...]
    source: str | None = None  # the plan file, None for a plan built from flags
    digest: str = ""  # sha256 of the file's bytes: how a reload notices a change
    heights: tuple[int, ...] = dataclasses.field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "heights", tuple(e.activation_height for e in self.entries))

    @property
    def requires_height(self) -> bool:
        """With two or more models, a request must say which height it is for."""
        return len(self.entries) > 1

    def index_for(self, height: int) -> int:
        return bisect.bisect_right(self.heights, height) - 1

    def entry_for(self, height: int) -> Entry:
        return self.entries[self.index_for(height)]

    def successor(self, entry: Entry) -> Entry | None:
        i = self.entries.index(entry)
        return self.entries[i + 1] if i + 1 < len(self.entries) else None

    def describe_heights(self) -> str:
        return ", ".join(f"{e.version} from {e.activation_height}" for e in self.entries)


def single(path: str, version: str, expected_hash: str | None) -> Plan:
    """The plan of a sidecar started with --model-path: one model for every height."""
    return Plan((Entry(version, os.path.abspath(path), expected_hash, 0),))


def load(path: str) -> Plan:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise PlanError(f"cannot read upgrade plan {path}: {e.strerror or e}") from None
    return parse(data, os.path.dirname(os.path.abspath(path)), path)


def parse(data: bytes, base_dir: str, source: str = "<plan>") -> Plan:
    """Parses and validates a plan; every problem names the entry and field."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise PlanError(f"{source} is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list):
        raise PlanError(f'{source} must be a JSON object with an "entries" list')
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise PlanError(f"{source}: unknown top-level keys {sorted(unknown)}")
    if not doc["entries"]:
        raise PlanError(f"{source}: the plan has no entries")
    entries: list[Entry] = []
    for i, raw in enumerate(doc["entries"]):
        where = f"{source} entry {i}"
        if not isinstance(raw, dict):
            raise PlanError(f"{where} is not a JSON object")
        # A misspelt key would otherwise be ignored and its default assumed.
        if set(raw) != _ENTRY_KEYS:
            raise PlanError(f"{where}: keys must be exactly {sorted(_ENTRY_KEYS)}, got {sorted(raw)}")
        version, path, expected, height = (raw[k] for k in ("version", "path", "expected_hash", "activation_height"))
        if not isinstance(version, str) or not version:
            raise PlanError(f"{where}: version must be a non-empty string")
        if not isinstance(path, str) or not path:
            raise PlanError(f"{where} ({version}): path must be a non-empty string")
        if not isinstance(expected, str) or not _HASH_RE.match(expected):
            raise PlanError(f"{where} ({version}): expected_hash must be 64 lowercase hex digits")
        if isinstance(height, bool) or not isinstance(height, int) or not 0 <= height <= MAX_HEIGHT:
            raise PlanError(f"{where} ({version}): activation_height must be an integer >= 0 and <= 2^63-1 (int64)")
        if entries and height <= entries[-1].activation_height:
            raise PlanError(
                f"{where} ({version}): activation heights must strictly increase "
                f"({height} follows {entries[-1].activation_height})"
            )
        if any(e.version == version for e in entries):
            raise PlanError(f"{where}: version {version} appears twice")
        entries.append(Entry(version, os.path.normpath(os.path.join(base_dir, path)), expected, height))
    if entries[0].activation_height != 0:
        raise PlanError(f"{source}: the first entry must activate at height 0, not {entries[0].activation_height}")
    return Plan(tuple(entries), source, hashlib.sha256(data).hexdigest())


def history_conflict(old: Plan, new: Plan, highest_seen: int) -> tuple[str, str] | None:
    """(version, why) when `new` would change the model of some height <= highest_seen, else None.

    Heights already answered must keep their model: a validator that changed
    them would disagree with its own earlier answers. The path may move; the
    version, hash and activation height of every entry active by then may not.
    `version` is the new plan's entry at the first difference (or the old one's
    if the new plan dropped it).
    """
    if highest_seen < 0:
        return None

    def past(plan: Plan) -> list[tuple[str, str | None, int]]:
        return [(e.version, e.expected_hash, e.activation_height) for e in plan.entries
                if e.activation_height <= highest_seen]

    def describe(e: tuple[str, str | None, int] | None) -> str:
        return "nothing" if e is None else f"{e[0]} (hash {e[1]}) from height {e[2]}"

    before, after = past(old), past(new)
    for i in range(max(len(before), len(after))):
        b = before[i] if i < len(before) else None
        a = after[i] if i < len(after) else None
        if a != b:
            return (a or b)[0], (
                f"the plan would change the model of heights already served (up to {highest_seen}): "
                f"{describe(b)} becomes {describe(a)}"
            )
    return None
