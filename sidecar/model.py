"""Loads the verified trust-score SavedModel and runs batch-1 inference.

Batch size is always exactly 1: oneDNN picks its sgemm kernel by CPU and only
batch-1 products came out bit-identical across CPUs. All TF calls run on one
dedicated thread owned by the model, so any number of request threads can
share it while TF itself never runs concurrently.
"""

import concurrent.futures
import json
import os
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
GOLDEN_FILE = "golden_vectors.json"


class ModelError(RuntimeError):
    """The model directory failed verification or could not be loaded."""


def read_metadata(path: str) -> dict[str, Any]:
    meta_path = os.path.join(path, hashing.METADATA_FILE)
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise ModelError(f"missing {meta_path}") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"unreadable {meta_path}: {e}") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{meta_path} is not a JSON object")
    return meta


def load_model(path: str, expected_hash: str | None = None, expected_version: str | None = None) -> "TrustModel":
    """Verifies the directory against its metadata and the caller's pins, then loads it.

    The checks run before TF touches any file, in this order: manifest hash vs
    export_metadata.json, vs expected_hash, version, TF version.
    """
    meta = read_metadata(path)
    recorded = meta.get("model_hash")
    try:
        actual = hashing.model_hash(path)
    except (hashing.ModelHashError, OSError) as e:
        raise ModelError(f"cannot hash model directory {path}: {e}") from None
    if actual != recorded:
        raise ModelError(
            f"model hash mismatch: {path} hashes to {actual} but {hashing.METADATA_FILE} records {recorded}"
        )
    if expected_hash is not None and actual != expected_hash:
        raise ModelError(f"model hash mismatch: {path} hashes to {actual} but expected {expected_hash}")
    version = meta.get("version")
    if expected_version is not None and version != expected_version:
        raise ModelError(f"model version mismatch: {path} is {version} but expected {expected_version}")
    tf = determinism.import_tensorflow()
    if meta.get("tensorflow_version") != tf.__version__:
        raise ModelError(
            f"TensorFlow version mismatch: model exported with {meta.get('tensorflow_version')} "
            f"but running {tf.__version__}"
        )
    return TrustModel(path, meta, actual)


def load_for_export(path: str) -> "TrustModel":
    """Loads without verification; only for the exporter, before metadata exists."""
    return TrustModel(path, None, None)


class TrustModel:
    """A loaded model plus the single thread all of its TF work runs on."""

    def __init__(self, path: str, metadata: dict[str, Any] | None, model_hash: str | None):
        self.path = path
        self.metadata = metadata
        self.hash = model_hash
        self.version = metadata.get("version") if metadata else None
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tf-inference")
        # Loading on the inference thread too keeps every TF call on one thread.
        try:
            self._executor.submit(self._load).result()
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    def _load(self) -> None:
        tf = determinism.import_tensorflow()
        self._tf = tf
        try:
            self._loaded = tf.saved_model.load(self.path)
        except Exception as e:  # TF raises a zoo of types for corrupt files.
            raise ModelError(f"cannot load SavedModel from {self.path}: {e}") from None
        sigs = self._loaded.signatures
        for name in (SERVING_SIGNATURE, CONTRIBUTIONS_SIGNATURE):
            if name not in sigs:
                raise ModelError(f"SavedModel {self.path} lacks signature {name!r}")
        self._serving = sigs[SERVING_SIGNATURE]
        self._contributions = sigs[CONTRIBUTIONS_SIGNATURE]

    # -- runs on the inference thread -------------------------------------
    def _run(self, values: np.ndarray, contributions: bool):
        x = self._tf.constant(values.reshape(1, F.FEATURE_DIM))
        if not contributions:
            return self._serving(features=x)[OUTPUT_NAME].numpy()[0, 0]
        out = self._contributions(features=x)
        raw = out[OUTPUT_NAME].numpy()[0, 0]
        without = out[GROUP_SCORES_NAME].numpy()[0]
        return raw, {name: np.float32(raw - without[i]) for i, name in enumerate(F.GROUP_NAMES)}

    # -- public API, callable from any thread -----------------------------
    def submit_infer(self, values, contributions: bool = False) -> concurrent.futures.Future:
        """Validates on the caller's thread, queues the TF call on the model thread.

        The future yields np.float32 raw score, or (raw, {group: contribution})
        when `contributions`; contribution = raw - raw with that group zeroed.
        """
        arr = F.validate(values)
        return self._executor.submit(self._run, arr, contributions)

    def infer(self, values) -> np.float32:
        return self.submit_infer(values, False).result()

    def infer_with_contributions(self, values) -> tuple[np.float32, dict[str, np.float32]]:
        return self.submit_infer(values, True).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> "TrustModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
