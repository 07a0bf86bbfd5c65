"""Loads the verified trust-score SavedModel and runs batch-1 inference.

Batch size is always exactly 1: oneDNN picks its sgemm kernel by CPU and only
batch-1 products came out bit-identical across CPUs. TF calls are serialised
by one lock and their kernels run on the caller's thread, in TF's own float
mode (determinism.flush_denormals): any number of request threads can share
the model while TF never runs concurrently, and no call waits for another
thread to wake up."""

import dataclasses
import json
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from sidecar import determinism
from sidecar import features as F
from sidecar import hashing

SERVING_SIGNATURE = "serving_default"
CONTRIBUTIONS_SIGNATURE = "contributions"
INPUT_NAME = "features"
OUTPUT_NAME = "trust_score"
GROUP_SCORES_NAME = "group_scores"


class ModelError(RuntimeError):
    """The model directory failed verification or could not be loaded.

    `kind` is a short, fixed word for metrics and for deciding what to tell
    an operator: missing_files, invalid_metadata, hash_mismatch,
    version_mismatch, tensorflow_version, load_error.
    """

    def __init__(self, message: str, kind: str = "load_error"):
        super().__init__(message)
        self.kind = kind


class Busy(TimeoutError):
    """The model stayed busy with other calls for the whole timeout."""


@dataclasses.dataclass(frozen=True, slots=True)
class ModelFacts:
    """What export_metadata.json says about a model; parsed once, read everywhere."""

    version: str
    model_hash: str
    tensorflow_version: str
    export_timestamp: str
    pipeline_version: str
    determinism: Mapping[str, Any]
    golden_file: str


_REQUIRED_STRINGS = ("version", "model_hash", "tensorflow_version", "export_timestamp", "pipeline_version")


def read_facts(path: str) -> ModelFacts:
    meta_path = os.path.join(path, hashing.METADATA_FILE)
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise ModelError(f"missing {meta_path}", "missing_files") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"unreadable {meta_path}: {e}", "invalid_metadata") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{meta_path} is not a JSON object", "invalid_metadata")
    bad = [k for k in _REQUIRED_STRINGS if not isinstance(meta.get(k), str)]
    golden_meta = meta.get("golden_vectors")
    if not isinstance(golden_meta, dict) or not isinstance(golden_meta.get("file"), str):
        bad.append("golden_vectors.file")
    if not isinstance(meta.get("determinism"), dict):
        bad.append("determinism")
    if bad:
        raise ModelError(f"{meta_path} lacks or mistypes {', '.join(bad)}", "invalid_metadata")
    return ModelFacts(
        version=meta["version"],
        model_hash=meta["model_hash"],
        tensorflow_version=meta["tensorflow_version"],
        export_timestamp=meta["export_timestamp"],
        pipeline_version=meta["pipeline_version"],
        determinism=meta["determinism"],
        golden_file=golden_meta["file"],
    )


def load_model(
    path: str,
    expected_hash: str | None = None,
    expected_version: str | None = None,
    timings: dict[str, float] | None = None,
) -> "TrustModel":
    """Verifies the directory against its metadata and the caller's pins, then loads it.

    The checks run before TF touches any file, in this order: manifest hash vs
    export_metadata.json, vs expected_hash, version, TF version. `timings`, when
    given, receives the seconds spent in "hash", "import_tensorflow" and "load".
    """
    timings = {} if timings is None else timings
    t0 = time.monotonic()
    facts = read_facts(path)
    try:
        actual = hashing.model_hash(path)
    except (hashing.ModelHashError, OSError) as e:
        raise ModelError(f"cannot hash model directory {path}: {e}", "missing_files") from None
    if actual != facts.model_hash:
        raise ModelError(
            f"model hash mismatch: {path} hashes to {actual} but {hashing.METADATA_FILE} records {facts.model_hash}",
            "hash_mismatch",
        )
    if expected_hash is not None and actual != expected_hash:
        raise ModelError(f"model hash mismatch: {path} hashes to {actual} but expected {expected_hash}"
                         + hashing.mismatch_hint(path, expected_hash), "hash_mismatch")
    if expected_version is not None and facts.version != expected_version:
        raise ModelError(
            f"model version mismatch: {path} is {facts.version} but expected {expected_version}", "version_mismatch"
        )
    t1 = time.monotonic()
    timings["hash"] = t1 - t0
    tf = determinism.import_tensorflow()
    t2 = time.monotonic()
    timings["import_tensorflow"] = t2 - t1
    if facts.tensorflow_version != tf.__version__:
        raise ModelError(
            f"TensorFlow version mismatch: model exported with {facts.tensorflow_version} "
            f"but running {tf.__version__}",
            "tensorflow_version",
        )
    model = TrustModel(path, facts)
    timings["load"] = time.monotonic() - t2
    return model


def load_for_export(path: str) -> "TrustModel":
    """Loads without verification; only for the exporter, before metadata exists."""
    return TrustModel(path, None)


class _SessionCall:
    """Runs a signature's function as a frozen graph in a private session, kernels on the caller's thread.

    The signature's function is frozen (its variables become constants of the
    same values), imported into a graph of its own and run through a callable
    of a session whose kernels all run on the calling thread
    (determinism.session_config), inside determinism.flush_denormals() so they
    see the float mode TF's own threads have. These are the graph's kernels
    that the eager signature call runs, minus the eager runtime around them
    and the hand-off to TF's inter-op thread and back. The model cross-checks
    it against the signature call on every golden vector at start-up, and
    tests do with random and extreme inputs. Only for one float32 (1, 768)
    input, called under the model's lock.
    """

    def __init__(self, tf, signature, output_names: tuple[str, ...]):
        # pylint: disable=import-outside-toplevel
        from tensorflow.core.protobuf import config_pb2
        from tensorflow.python.framework import convert_to_constants

        flat = sorted(signature.structured_outputs)  # the order of signature.outputs
        if sorted(flat) != sorted(output_names):
            raise ModelError(f"signature outputs {flat} are not {list(output_names)}")
        frozen = convert_to_constants.convert_variables_to_constants_v2(signature)
        if len(frozen.inputs) != 1:
            raise ModelError(f"signature takes {len(frozen.inputs)} inputs, not one {INPUT_NAME} tensor")
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(frozen.graph.as_graph_def(), name="")
        self._session = tf.compat.v1.Session(graph=graph, config=determinism.session_config(tf))
        options = config_pb2.CallableOptions(
            feed=[t.name for t in frozen.inputs],
            fetch=[frozen.outputs[flat.index(name)].name for name in output_names],
        )
        # Session.make_callable with feeds runs every call through Session.run's
        # Python fetch and feed handling (~0.1 ms); a callable made from
        # CallableOptions goes straight to TF_SessionRunCallable with the array.
        self._call = self._session._make_callable_from_options(options)  # pylint: disable=protected-access

    def __call__(self, values: np.ndarray) -> list[np.ndarray]:
        with determinism.flush_denormals():
            return self._call(values.reshape(1, F.FEATURE_DIM))

    def close(self) -> None:
        self._session.close()


def _with_contributions(raw: np.float32, group_scores: np.ndarray) -> tuple[np.float32, dict[str, np.float32]]:
    """(raw, {group: raw - the score with that group zeroed}), groups in F.GROUP_NAMES order."""
    return raw, {name: np.float32(raw - group_scores[i]) for i, name in enumerate(F.GROUP_NAMES)}


class TrustModel:
    """A loaded model; callable from any thread, one TF call at a time."""

    def __init__(self, path: str, facts: ModelFacts | None):
        self.path = path
        self.facts = facts
        self.hash = facts.model_hash if facts else None
        self.version = facts.version if facts else None
        self._lock = threading.Lock()
        self._closed = False
        tf = determinism.import_tensorflow()
        self._tf = tf
        try:
            self._loaded = tf.saved_model.load(path)
        except Exception as e:  # TF raises a zoo of types for corrupt files.
            raise ModelError(f"cannot load SavedModel from {path}: {e}", "load_error") from None
        sigs = self._loaded.signatures
        for name in (SERVING_SIGNATURE, CONTRIBUTIONS_SIGNATURE):
            if name not in sigs:
                raise ModelError(f"SavedModel {path} lacks signature {name!r}")
        self._serving = sigs[SERVING_SIGNATURE]
        self._contributions = sigs[CONTRIBUTIONS_SIGNATURE]
        self._fast_serving = _SessionCall(tf, self._serving, (OUTPUT_NAME,))
        self._fast_contributions = _SessionCall(tf, self._contributions, (OUTPUT_NAME, GROUP_SCORES_NAME))

    def run(self, arr: np.ndarray, contributions: bool = False, timeout: float | None = None):
        """One batch-1 inference of an array F.validate() returned.

        Returns the np.float32 raw score, or (raw, {group: contribution}) when
        `contributions`; contribution = raw - raw with that group zeroed.
        Raises Busy if the lock is not free within `timeout` seconds (None: wait).
        """
        self._acquire(timeout)
        try:
            if not contributions:
                (raw,) = self._fast_serving(arr)
                return raw[0, 0]
            raw, without = self._fast_contributions(arr)
        finally:
            self._lock.release()
        return _with_contributions(raw[0, 0], without[0])

    def run_reference(self, arr: np.ndarray, contributions: bool = False):
        """run() through TF's public signature call (slower; for cross-checks and benchmarks)."""
        x = self._tf.constant(arr.reshape(1, F.FEATURE_DIM))
        self._acquire(None)
        try:
            if not contributions:
                return self._serving(features=x)[OUTPUT_NAME].numpy()[0, 0]
            out = self._contributions(features=x)
        finally:
            self._lock.release()
        return _with_contributions(out[OUTPUT_NAME].numpy()[0, 0], out[GROUP_SCORES_NAME].numpy()[0])

    def _acquire(self, timeout: float | None) -> None:
        if not self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            raise Busy(f"model busy with other calls for {timeout:.6f}s")
        if self._closed:
            self._lock.release()
            raise ModelError("model is closed")

    def cross_check(self, inputs) -> list[str]:
        """Compares the serving path with the public signature call, bit for bit; [] means equal."""
        problems = []
        for i, values in enumerate(inputs):
            arr = F.validate(values)
            for contributions in (False, True):
                fast = self.run(arr, contributions)
                ref = self.run_reference(arr, contributions)
                if not contributions:
                    fast, ref = (fast, {}), (ref, {})
                got = [hashing.float32_hex(fast[0])] + [hashing.float32_hex(v) for v in fast[1].values()]
                want = [hashing.float32_hex(ref[0])] + [hashing.float32_hex(v) for v in ref[1].values()]
                if got != want:
                    problems.append(f"input {i}: direct call {got} != signature call {want} (contributions={contributions})")
        return problems

    def infer(self, values) -> np.float32:
        """Validates any numeric sequence (FeatureError) and runs it."""
        return self.run(F.validate(values), False)

    def infer_with_contributions(self, values) -> tuple[np.float32, dict[str, np.float32]]:
        return self.run(F.validate(values), True)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Waits for the call in progress; later calls raise ModelError."""
        with self._lock:
            if not self._closed:
                self._fast_serving.close()
                self._fast_contributions.close()
            self._closed = True

    def __enter__(self) -> "TrustModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
