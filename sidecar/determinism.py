"""Process-wide determinism settings, applied before TensorFlow is imported.

Every validator must produce bit-identical scores, so these settings are part
of the model's correctness, not tuning. They are defined once here and recorded
verbatim in export_metadata.json and reported by the service.

PYTHONHASHSEED is only read by the interpreter at start-up: setting it here
fixes str hashing for child processes (e.g. the retrain test's subprocesses),
not for the current one. Nothing on the inference path depends on str hashing.

ONEDNN_MAX_CPU_ISA is deliberately not managed: tests set it to make oneDNN
pick the kernels other CPUs would pick, and the exported model must not change.

GUARDED_ENVIRONMENT lists the variables TensorFlow 2.21 or its bundled oneDNN
actually reads (their names are in libtensorflow_framework.so.2 /
libtensorflow_cc.so.2, oneDNN's as "ONEDNN_"/"DNNL_" + suffix) that can change
float32 arithmetic or its summation order on some CPUs; any value but the
listed harmless ones is refused at start-up, naming the variable, rather than
serving scores that differ from other validators'. They are not set, only
checked, so settings() (recorded in export_metadata.json) is unchanged.
Not guarded because TF 2.21 never reads them: TF_ENABLE_XLA,
ONEDNN_CPU_ISA_HINTS / DNNL_CPU_ISA_HINTS. OMP_NUM_THREADS is in ENVIRONMENT.
"""

import ctypes
import os
import platform
import random
import sys
import threading
import types

SEED = 42
INTER_OP_THREADS = 1
INTRA_OP_THREADS = 1
# A session with a negative inter-op thread count runs every kernel on the
# thread that calls it (ConfigProto.inter_op_parallelism_threads); with
# INTRA_OP_THREADS = 1 no kernel is split across threads either.
CALLER_THREAD = -1

ENVIRONMENT = {
    "CUDA_VISIBLE_DEVICES": "-1",
    "TF_DETERMINISTIC_OPS": "1",
    "TF_CUDNN_DETERMINISTIC": "1",
    "TF_USE_CUDNN_AUTOTUNE": "0",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "OMP_NUM_THREADS": "1",
    "PYTHONHASHSEED": str(SEED),
}


_FPMATH = ("", "strict")
# name -> (accepted values after strip().lower(), what any other value does).
GUARDED_ENVIRONMENT: dict[str, tuple[tuple[str, ...], str]] = {
    "ONEDNN_DEFAULT_FPMATH_MODE": (
        _FPMATH,
        "lets oneDNN compute float32 products in bf16/f16/tf32 on CPUs that have such units (AVX512-BF16, AMX)",
    ),
    "DNNL_DEFAULT_FPMATH_MODE": (_FPMATH, "is oneDNN's older name for ONEDNN_DEFAULT_FPMATH_MODE"),
    "TF_SET_ONEDNN_FPMATH_MODE": (("",), "makes TensorFlow set a reduced-precision oneDNN fpmath mode"),
    "TF_ENABLE_ZENDNN_OPTS": (("", "0", "false"), "switches float32 kernels to AMD ZenDNN's"),
    "TF_ENABLE_ONEDNN_SPMM": (("", "0", "false"), "switches sparse matmuls to oneDNN kernels"),
    "TF_NUM_INTEROP_THREADS": (("", str(INTER_OP_THREADS)), f"changes TF's inter-op thread count (must be {INTER_OP_THREADS})"),
    "TF_NUM_INTRAOP_THREADS": (
        ("", str(INTRA_OP_THREADS)),
        f"changes TF's intra-op thread count (must be {INTRA_OP_THREADS}); more threads split sums differently",
    ),
    "TF_XLA_FLAGS": (("",), "configures XLA JIT compilation (e.g. --tf_xla_auto_jit), which replaces TF's kernels"),
    "XLA_FLAGS": (("",), "changes XLA's CPU code generation (e.g. fast-math)"),
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
    for name, (accepted, effect) in GUARDED_ENVIRONMENT.items():
        have = os.environ.get(name)
        if have is not None and have.strip().lower() not in accepted:
            allowed = ", ".join(repr(a) for a in accepted if a)
            raise DeterminismError(
                f"environment variable {name}={have!r} is refused: it {effect}, so scores could differ from "
                f"other validators'; unset it{f' (or set {allowed})' if allowed else ''}"
            )
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


class _Fenv(ctypes.Structure):
    """glibc's x86-64 fenv_t: the x87 environment (fnstenv's 28 bytes), then MXCSR."""

    _fields_ = [("x87", ctypes.c_char * 28), ("mxcsr", ctypes.c_uint32)]


_MXCSR_FTZ_DAZ = 0x8040  # flush-to-zero (results) | denormals-are-zero (inputs)
_libc_fenv: tuple | None = None


def _fenv_functions() -> tuple:
    global _libc_fenv
    if _libc_fenv is None:
        if platform.machine() not in ("x86_64", "AMD64"):
            raise DeterminismError(
                f"running kernels on the calling thread needs x86-64's MXCSR flush modes; this is {platform.machine()}"
            )
        libc = ctypes.CDLL(None)
        _libc_fenv = (libc.fegetenv, libc.fesetenv)
    return _libc_fenv


class flush_denormals:  # pylint: disable=invalid-name
    """Within it the calling thread flushes denormals to zero, as TensorFlow's own threads do.

    TensorFlow starts its pool threads with flush-to-zero and
    denormals-are-zero set (and round-to-nearest, every thread's default), so
    a kernel on one of them turns a subnormal input or result into 0. Kernels
    run on the caller's thread (CALLER_THREAD) must see the same mode or they
    return other bits whenever a subnormal occurs. The thread's previous
    mode is restored on exit: Python's own arithmetic (hashes, reason codes)
    keeps IEEE subnormals. A class rather than a generator: it wraps every
    inference, and this costs a third as much.
    """

    __slots__ = ("_saved",)

    def __enter__(self) -> None:
        get, set_ = _fenv_functions()
        self._saved = _Fenv()
        if get(ctypes.byref(self._saved)) != 0:
            raise DeterminismError("fegetenv failed: cannot read this thread's floating-point mode")
        flushing = _Fenv.from_buffer_copy(self._saved)
        flushing.mxcsr |= _MXCSR_FTZ_DAZ
        if set_(ctypes.byref(flushing)) != 0:
            raise DeterminismError("fesetenv failed: cannot set flush-to-zero on this thread")

    def __exit__(self, *exc) -> None:
        _fenv_functions()[1](ctypes.byref(self._saved))


def session_config(tf):
    """A tf.compat.v1.ConfigProto running every kernel on the caller's thread, one intra-op thread."""
    return tf.compat.v1.ConfigProto(
        inter_op_parallelism_threads=CALLER_THREAD, intra_op_parallelism_threads=INTRA_OP_THREADS
    )


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
