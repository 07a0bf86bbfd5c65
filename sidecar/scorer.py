"""The in-process trust scorer: the one path from features to a verdict.

The gRPC server is a thin mapping from this module's results to protobufs, and
a chain node may embed the same objects directly (sidecar.registry's
from_environment), so an embedded scorer and a sidecar cannot disagree: both
run validate -> one batch-1 model call under the model's lock ->
scoring.evaluate. A Scorer is one verified model; sidecar.registry picks the
Scorer for a block height.

Loading refuses to return a scorer unless every start-up check passed: the
determinism environment, the model hash (before TensorFlow is imported), the
model and TensorFlow versions, and every golden vector reproduced bit for bit,
both through golden.check_all and through this module's own scoring path.
"""

import dataclasses
import os
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from absl import logging

from sidecar import determinism
from sidecar import duration
from sidecar import features as F
from sidecar import golden
from sidecar import hashing
from sidecar import model as model_lib
from sidecar import scoring

DEFAULT_MODEL_PATH = os.path.join("models", "trust_score")


def workspace_path(path: str) -> str:
    """A path as an operator typed it.

    `bazel run` starts binaries inside runfiles, where every file is a symlink
    (which the model hash refuses) and relative paths mean nothing to the
    operator; they mean the workspace they ran Bazel in.
    """
    return os.path.join(os.environ.get("BUILD_WORKSPACE_DIRECTORY", ""), path)


DEFAULT_VECTOR = "high_quality_verification"


_HASH_RE = re.compile(r"^[0-9a-f]{64}$")

FeatureError = F.FeatureError


class ScorerError(RuntimeError):
    """The scorer refused to start; the message names the failed check.

    `kind` is model.ModelError's word for it, or determinism / self_check /
    missing_files for the checks this module runs.
    """

    def __init__(self, message: str, kind: str = "load_error"):
        super().__init__(message)
        self.kind = kind


class DeadlineExceeded(TimeoutError):
    """Queueing plus compute did not finish before the deadline."""


class UnknownVector(LookupError):
    """No golden vector has the requested name."""

    def __str__(self) -> str:  # LookupError would repr() the message.
        return str(self.args[0])


@dataclasses.dataclass(frozen=True, slots=True)
class Score:
    """The verdict and the model that produced it."""

    result: scoring.ScoreResult
    # Group name -> contribution, only when asked for.
    contributions: Mapping[str, np.float32] | None
    model_version: str
    model_hash: str


@dataclasses.dataclass(frozen=True, slots=True)
class Verification:
    passed: bool
    actual_output_hash: str
    expected_output_hash: str
    differences: tuple[str, ...]
    test_vector_id: str


def is_model_hash(text: str) -> bool:
    return bool(_HASH_RE.match(text))


class Scorer:
    """A verified model plus its golden vectors; safe to call from any thread."""

    def __init__(self, model: model_lib.TrustModel, vectors: list[dict[str, Any]]):
        self._model = model
        self._vectors = {v["name"]: v for v in vectors}
        self.model_path = model.path
        self.facts: model_lib.ModelFacts = model.facts
        self.model_hash: str = model.hash
        self.model_version: str = model.version

    @classmethod
    def load(
        cls,
        model_path: str,
        *,
        expected_hash: str | None = None,
        expected_version: str | None = None,
        force_cpu: bool = True,
    ) -> "Scorer":
        """Runs every start-up check in order; raises ScorerError naming the first failure."""
        if not force_cpu:
            raise ScorerError("force_cpu=False is not supported: only CPU inference is bit-reproducible across validators")
        if expected_hash and not is_model_hash(expected_hash):
            raise ScorerError(f"expected model hash {expected_hash!r} is not 64 lowercase hex digits")
        try:
            logging.info("start-up 1/6: applying determinism environment %s", determinism.ENVIRONMENT)
            determinism.apply_environment()
        except determinism.DeterminismError as e:
            raise ScorerError(str(e), "determinism") from None
        # Every check below reads a private copy: the bytes hashed are the bytes
        # TensorFlow loads and the golden vectors checked, whatever happens to
        # model_path meanwhile. Messages name model_path, not the copy.
        try:
            with hashing.private_copy(model_path) as snapshot:
                logging.info("start-up: copied %s to %s; the checks below read the copy", model_path, snapshot)
                try:
                    scorer = cls._load_verified(snapshot, expected_hash, expected_version)
                except ScorerError as e:
                    raise ScorerError(str(e).replace(snapshot, model_path), e.kind) from None
        except hashing.ModelHashError as e:
            raise ScorerError(f"cannot hash model directory {model_path}: {e}", "missing_files") from None
        except OSError as e:
            raise ScorerError(f"model directory {model_path} is missing or unreadable: {e.strerror or e}",
                              "missing_files") from None
        scorer.model_path = model_path
        return scorer

    @classmethod
    def _load_verified(cls, model_path: str, expected_hash: str | None, expected_version: str | None) -> "Scorer":
        try:
            logging.info("start-up 2/6: checking %s against the determinism contract", model_path)
            facts = model_lib.read_facts(model_path)
            _check_recorded_determinism(facts)
            if facts.golden_file != golden.GOLDEN_FILE:
                # export_metadata.json is outside the hash: it may not choose which
                # (possibly unhashed, possibly outside) file the self-check trusts.
                raise ScorerError(
                    f"{hashing.METADATA_FILE} names golden vectors {facts.golden_file!r}; only "
                    f"{golden.GOLDEN_FILE!r}, inside the hashed directory, is accepted", "invalid_metadata")
            logging.info(
                "start-up 3/6: verifying model hash (export_metadata.json%s), version%s and TensorFlow version",
                f" and expected {expected_hash}" if expected_hash else "",
                f" {expected_version}" if expected_version else "",
            )
            timings: dict[str, float] = {}
            model = model_lib.load_model(model_path, expected_hash or None, expected_version or None, timings)
        except model_lib.ModelError as e:
            raise ScorerError(str(e), e.kind) from None
        try:
            logging.info(
                "start-up 4/6: loaded model %s (%s) (hash %.3fs, TensorFlow import %.3fs, load %.3fs)",
                model.version, model.hash, timings["hash"], timings["import_tensorflow"], timings["load"],
            )
            _check_no_gpu()
            vectors = golden.load_vectors(model_path)
            if not vectors:
                raise ScorerError(f"{golden.GOLDEN_FILE} has no vectors: the model could not check itself",
                                  "self_check")
            logging.info("start-up 5/6: running %d golden vectors", len(vectors))
            problems = golden.check_all(model, vectors)
            problems += model.cross_check([v["features"] for v in vectors])
            if problems:
                raise ScorerError(
                    f"golden vector self-check failed ({len(problems)} mismatches): " + "; ".join(problems), "self_check"
                )
            scorer = cls(model, vectors)
            logging.info("start-up 6/6: checking golden vectors through the serving path")
            for name in scorer.vector_names():
                v = scorer.verify_vector(name)
                if not v.passed:
                    raise ScorerError(
                        f"golden vector {name} through the serving path: " + "; ".join(v.differences), "self_check"
                    )
        except BaseException as e:
            model.close()
            if isinstance(e, ScorerError):
                raise
            if isinstance(e, (OSError, ValueError, KeyError, TypeError)):
                raise ScorerError(f"cannot read golden vectors of {model_path}: {e!r}", "missing_files") from None
            raise
        return scorer

    def vector_names(self) -> list[str]:
        return list(self._vectors)

    def has_vector(self, name: str) -> bool:
        return name in self._vectors

    def vector(self, name: str) -> dict[str, Any]:
        try:
            return self._vectors[name]
        except KeyError:
            raise UnknownVector(f"unknown test vector {name!r}; known: {', '.join(self._vectors)}") from None

    def score(self, values: Iterable[float] | np.ndarray, contributions: bool = False, deadline: float | None = None) -> Score:
        """Validates, runs one batch-1 inference and scores it.

        `deadline` is a time.monotonic() instant bounding waiting for the model
        plus compute. Raises FeatureError (bad input) or DeadlineExceeded.
        """
        arr = F.validate(values)
        timeout = None
        if deadline is not None:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise DeadlineExceeded("deadline passed before inference started")
        try:
            out = self._model.run(arr, contributions, timeout)
        except model_lib.Busy:
            raise DeadlineExceeded(
                f"inference not started within {duration.format_seconds(timeout)}: the model was busy with other calls"
            ) from None
        if deadline is not None and time.monotonic() > deadline:
            # Nobody is waiting for a late answer; say so rather than send it.
            raise DeadlineExceeded(f"inference finished after the {duration.format_seconds(timeout)} left for it")
        if contributions:
            raw, contrib = out
            return Score(scoring.evaluate(arr, raw), {k: scoring.canonical(v) for k, v in contrib.items()},
                         self.model_version, self.model_hash)
        return Score(scoring.evaluate(arr, out), None, self.model_version, self.model_hash)

    def verify_vector(self, name: str, deadline: float | None = None) -> Verification:
        """Runs a golden vector through score() and lists every field that differs."""
        want = self.vector(name)
        r = self.score(want["features"], deadline=deadline).result
        got = {
            "output_hash": r.output_hash,
            "exact_output_hash": r.exact_output_hash,
            "input_hash": r.input_hash,
            "raw_score_bits": hashing.float32_hex(r.raw_score),
            "score": r.score,
            "confidence_bits": hashing.float32_hex(r.confidence),
            "reason_codes": list(r.reason_codes),
        }
        diffs = tuple(
            f"{key}: expected {want[key]!r}, got {value!r}" for key, value in got.items() if want.get(key) != value
        )
        return Verification(not diffs, r.output_hash, want["output_hash"], diffs, name)

    def verify_custom(
        self, values: Iterable[float] | np.ndarray, expected_output_hash: str = "", deadline: float | None = None
    ) -> Verification:
        """Compares with `expected_output_hash` (a chain output hash) or, without one, two runs."""
        arr = F.validate(values)
        first = self.score(arr, deadline=deadline).result
        expected = expected_output_hash.strip().lower()
        if expected:
            diffs = []
            if first.output_hash != expected:
                diffs.append(f"output_hash: expected {expected}, got {first.output_hash}")
                if expected == first.exact_output_hash:
                    diffs.append("expected_output_hash equals exact_output_hash; this field takes the chain output_hash")
            return Verification(not diffs, first.output_hash, expected, tuple(diffs), "")
        second = self.score(arr, deadline=deadline).result
        diffs = ["no expected_output_hash given: only compared two runs of the same input"]
        same = first.exact_output_hash == second.exact_output_hash
        if not same:
            diffs.append(f"exact_output_hash differs between runs: {first.exact_output_hash} then {second.exact_output_hash}")
        return Verification(same, first.output_hash, "", tuple(diffs), "")

    @property
    def closed(self) -> bool:
        return self._model.closed

    def close(self) -> None:
        self._model.close()

    def __enter__(self) -> "Scorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_recorded_determinism(facts: model_lib.ModelFacts) -> None:
    # The model's outputs were recorded under these settings; serving under
    # others would produce different bits for the same hash.
    want = determinism.settings()
    if facts.determinism != want:
        raise ScorerError(
            f"export_metadata.json records determinism settings {facts.determinism} but this sidecar enforces {want}",
            "determinism",
        )


def _check_no_gpu() -> None:
    tf = determinism.import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        raise ScorerError(f"GPU visible to TensorFlow ({[g.name for g in gpus]}) although CPU is forced", "determinism")
