"""Process-wide determinism settings, applied before TensorFlow is imported.

Every validator must produce bit-identical scores, so these settings are part
of the model's correctness, not tuning. They are defined once here and recorded
verbatim in export_metadata.json and reported by the service.

PYTHONHASHSEED is only read by the interpreter at start-up: setting it here
fixes str hashing for child processes (e.g. the retrain test's subprocesses),
not for the current one. Nothing on the inference path depends on str hashing.

ONEDNN_MAX_CPU_ISA is deliberately not managed: tests set it to make oneDNN
pick the kernels other CPUs would pick, and the exported model must not change.
"""

import os
import random
import sys
import threading
import types

SEED = 42
INTER_OP_THREADS = 1
INTRA_OP_THREADS = 1

ENVIRONMENT = {
    "CUDA_VISIBLE_DEVICES": "-1",
    "TF_DETERMINISTIC_OPS": "1",
    "TF_CUDNN_DETERMINISTIC": "1",
    "TF_USE_CUDNN_AUTOTUNE": "0",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "OMP_NUM_THREADS": "1",
    "PYTHONHASHSEED": str(SEED),
}


class DeterminismError(RuntimeError):
    """The process cannot be made deterministic as required."""


_lock = threading.Lock()
_tf: types.ModuleType | None = None


def apply_environment() -> None:
    """Sets ENVIRONMENT; refuses to override a contradicting value or a live TF."""
    if _tf is not None:
        return  # Already applied and TF configured by import_tensorflow().
    if "tensorflow" in sys.modules:
        raise DeterminismError(
            "tensorflow was imported before determinism.apply_environment(); "
            "import it only through sidecar.determinism.import_tensorflow()"
        )
    for name, want in ENVIRONMENT.items():
        have = os.environ.get(name)
        if have is not None and have != want:
            raise DeterminismError(f"environment variable {name}={have!r} contradicts required {name}={want!r}")
    os.environ.update(ENVIRONMENT)


def import_tensorflow() -> types.ModuleType:
    """Applies the environment, imports and configures TF once, returns the module."""
    global _tf
    with _lock:
        if _tf is not None:
            return _tf
        apply_environment()
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        # Thread pools must be sized before the TF runtime starts; this runs
        # right after import, before any op, so it cannot fail with "already
        # initialized". The values also end up in saved_model.pb.
        tf.config.threading.set_inter_op_parallelism_threads(INTER_OP_THREADS)
        tf.config.threading.set_intra_op_parallelism_threads(INTRA_OP_THREADS)
        tf.config.experimental.enable_op_determinism()
        tf.random.set_seed(SEED)
        import numpy as np  # pylint: disable=import-outside-toplevel

        np.random.seed(SEED)
        random.seed(SEED)
        _tf = tf
        return tf


def settings() -> dict:
    """Plain, JSON-ready description of everything this module enforces."""
    return {
        "environment": dict(sorted(ENVIRONMENT.items())),
        "seed": SEED,
        "inter_op_threads": INTER_OP_THREADS,
        "intra_op_threads": INTRA_OP_THREADS,
        "op_determinism": True,
        "inference_batch_size": 1,
    }
