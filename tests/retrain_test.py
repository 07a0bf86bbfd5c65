"""Retraining inside the build reproduces every committed model bit for bit.

//models:trust_score and //models:trust_score_v1_1 (and their _avx2, _avx,
_sse41 twins, trained with oneDNN capped to older CPUs' ISAs) run
models/train.py as Bazel actions; this test compares each output with the
committed models/<name> file by file.
"""

import filecmp
import json
import os
import subprocess
import sys
import concurrent.futures

import pytest

from ops import committed_model
from sidecar import determinism
from sidecar import hashing

MODELS = ("trust_score", "trust_score_v1_1")
ISAS = {"native": "", "AVX2": "_avx2", "AVX": "_avx", "SSE41": "_sse41"}


def child_pythonpath() -> str:
    # The repo root plus everything this interpreter can import: under Bazel
    # the pip packages live in runfiles directories only the launcher knows.
    return os.pathsep.join([os.getcwd()] + [p for p in sys.path if p])


@pytest.fixture(scope="module", params=MODELS)
def committed(request, tmp_path_factory):
    src = os.path.join("models", request.param)
    return request.param, committed_model.copy_model(str(tmp_path_factory.mktemp("committed")), src)


def _all_files(root: str) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files
    )


@pytest.mark.parametrize("isa", sorted(ISAS))
def test_retrain_is_bit_identical(committed, tmp_path, isa):
    name, committed_dir = committed
    out = committed_model.copy_model(str(tmp_path), f"models/retrained/{name}{ISAS[isa]}")
    assert hashing.model_hash(out) == hashing.model_hash(committed_dir)
    files = _all_files(committed_dir)
    assert _all_files(out) == files
    _, mismatch, errors = filecmp.cmpfiles(committed_dir, out, files, shallow=False)
    assert (mismatch, errors) == ([], []), f"differs from the committed model: {mismatch + errors}"


# Multiplies a [64, 768] batch (which oneDNN computes differently per ISA) and
# a [1, 768] one; prints both digests.
_PROBE = """
import hashlib
import numpy as np
from sidecar import determinism
tf = determinism.import_tensorflow()
rng = np.random.RandomState(0)
w = tf.constant(rng.uniform(-1, 1, (768, 256)).astype(np.float32))
for rows in (64, 1):
    x = tf.constant(rng.uniform(-1, 1, (rows, 768)).astype(np.float32))
    print(hashlib.sha256(tf.matmul(x, w).numpy().tobytes()).hexdigest())
"""


def test_isa_caps_are_effective():
    """Without this, identical retrains under the caps could mean the caps did nothing."""
    env = dict(os.environ, PYTHONPATH=child_pythonpath())
    env.pop("ONEDNN_MAX_CPU_ISA", None)

    def probe(isa: str) -> list[str]:
        run_env = dict(env, ONEDNN_MAX_CPU_ISA=isa) if isa else env
        r = subprocess.run([sys.executable, "-c", _PROBE], env=run_env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-4000:]
        return r.stdout.split()

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        outputs = list(pool.map(probe, ("", "SSE41")))
    (native_batch, native_single), (sse_batch, sse_single) = outputs
    assert native_single == sse_single, "batch-1 matmul differs between ISAs: inference is not portable"
    if native_batch == sse_batch:
        pytest.skip("this CPU's best oneDNN ISA matches SSE41; the caps emulate nothing here")


def test_determinism_settings_recorded(committed):
    with open(os.path.join(committed[1], "export_metadata.json"), encoding="utf-8") as f:
        meta = json.load(f)
    assert meta["determinism"] == determinism.settings()


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
