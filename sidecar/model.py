"""Loads the verified trust-score SavedModel and runs batch-1 inference.

Batch size is always exactly 1: oneDNN picks its sgemm kernel by CPU and only
batch-1 products came out bit-identical across CPUs. TF calls are serialised
by one lock and run on the caller's thread: any number of request threads can
share the model while TF never runs concurrently. (A dedicated inference
thread cost two cross-thread wake-ups per call, ~0.1 ms of a 0.2 ms call,
without changing a bit: the kernels run on TF's own inter-op thread either way.)
"""

import dataclasses
import itertools
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


class _DirectCall:
    """Calls a signature's function the way TF's own signature call ends up calling it.

    A signature call spends most of its ~200 us binding and checking Python
    arguments before it executes the function as one op. This issues that op
    itself with TFE_Py_Execute: the same function (or, when the signature's
    function only forwards its arguments to one inner function call and passes
    its results through Identity, that inner function: one function call
    fewer, ~0.07 ms), the same captured variables and call attributes, so the
    kernels and therefore the bits are the same. The model cross-checks it
    against the signature call on every golden vector at start-up, and tests
    do with random inputs. Only for one float32 (1, 768) input, called under
    the model's lock.
    """

    def __init__(self, tf, signature, output_names: tuple[str, ...]):
        # pylint: disable=import-outside-toplevel,protected-access
        from tensorflow.python import pywrap_tfe
        from tensorflow.python.eager import context
        from tensorflow.python.framework import ops

        fn = signature._inference_function
        flat = [spec.name for spec in fn.function_type.flat_outputs]
        if sorted(flat) != sorted(output_names):
            raise ModelError(f"signature outputs {flat} are not {list(output_names)}")
        self._ctx = context.context()
        self._execute = pywrap_tfe.TFE_Py_Execute
        self._tensor = ops.EagerTensor
        self._float32 = tf.float32.as_datatype_enum
        self._captures = list(signature.captured_inputs)
        attrs = self._ctx.function_call_options.as_attrs()
        wanted = [flat.index(name) for name in output_names]
        body = _forwarded_call(fn.cached_definition)
        if body is not None and self._ctx.has_function(body[0]):
            self._name, self._outputs, inner = body
            self._order = tuple(inner[i] for i in wanted)
            # Runs the body's ~100 small ops in order on one thread rather than
            # dispatching each through the executor's ready queue: 5 % faster,
            # the same kernels in a fixed order.
            attrs["executor_type"] = "SINGLE_THREADED_EXECUTOR"
        else:
            self._name, self._outputs = fn.name.decode("utf-8"), len(flat)
            self._order = tuple(wanted)
        self._attrs = tuple(itertools.chain(*attrs.items()))

    def __call__(self, values: np.ndarray) -> list[np.ndarray]:
        ctx = self._ctx
        device = ctx.device_name  # a thread-local lookup; read once
        x = self._tensor(values.reshape(1, F.FEATURE_DIM), device, self._float32)
        out = self._execute(ctx._handle, device, self._name, [x] + self._captures, self._attrs, self._outputs)  # pylint: disable=protected-access
        return [out[i].numpy() for i in self._order]


def _forwarded_call(fdef) -> tuple[str, int, list[int]] | None:
    """(inner function, its output count, inner output index per outer output)
    when `fdef` is exactly: one call of another function with all of fdef's
    arguments in order, a NoOp, and an Identity per output; else None."""
    args = [a.name for a in fdef.signature.input_arg]
    calls = [n for n in fdef.node_def if n.op in ("StatefulPartitionedCall", "PartitionedCall")]
    if len(calls) != 1 or list(calls[0].input) != args:
        return None
    call = calls[0]
    identities = {n.name: n for n in fdef.node_def if n.op == "Identity"}
    if any(n.op not in ("NoOp", "Identity") and n is not call for n in fdef.node_def):
        return None
    inner = []
    for out in fdef.signature.output_arg:
        node = identities.get(fdef.ret[out.name].split(":")[0])
        prefix = f"{call.name}:output:"
        if node is None or not node.input or not node.input[0].startswith(prefix):
            return None
        inner.append(int(node.input[0][len(prefix):]))
    return call.attr["f"].func.name, len(call.attr["Tout"].list.type), inner


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
        self._fast_serving = _DirectCall(tf, self._serving, (OUTPUT_NAME,))
        self._fast_contributions = _DirectCall(tf, self._contributions, (OUTPUT_NAME, GROUP_SCORES_NAME))

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
            self._closed = True

    def __enter__(self) -> "TrustModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
