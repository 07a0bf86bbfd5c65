"""Golden vectors through the committed model, plus load_model's refusals.

All of this runs in one process, the only TF-importing one in the suite.
"""

import concurrent.futures
import json
import os

import numpy as np
import pytest

from ops import committed_model
from sidecar import features as F
from sidecar import golden
from sidecar import hashing
from sidecar import model as model_lib
from tests import extreme_values as X
from tests import model_fixture

REQUIRED_VECTORS = {
    "high_quality_verification",
    "medium_quality_verification",
    "low_quality_document",
    "missing_face_embedding",
    "all_zeros",
    "edge_all_ones",
    "edge_all_zeros_but_scopes",
}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = committed_model.copy_model(str(tmp_path_factory.mktemp("golden")))
    m = model_lib.load_model(path, expected_version="v1.0.0")
    yield m
    m.close()


@pytest.fixture(scope="module")
def vectors(model):
    return golden.load_vectors(model.path)


def test_vector_set(vectors):
    names = [v["name"] for v in vectors]
    assert len(names) >= 8 and len(set(names)) == len(names)
    assert REQUIRED_VECTORS <= set(names)


def test_every_golden_vector_reproduces(model, vectors):
    assert golden.check_all(model, vectors) == []


def test_features_round_trip_exactly(vectors):
    for v in vectors:
        arr = F.validate(v["features"])
        assert [float(x) for x in arr] == v["features"], v["name"]
        assert hashing.chain_hash(arr) == v["input_hash"], v["name"]


def test_contributions_trust_score_is_bit_identical(model, vectors):
    for v in vectors:
        values = F.validate(v["features"])
        plain = model.infer(values)
        raw, contrib = model.infer_with_contributions(values)
        assert hashing.float32_hex(raw) == hashing.float32_hex(plain) == v["raw_score_bits"], v["name"]
        assert list(contrib) == list(F.GROUP_NAMES)


def test_zero_groups_contribute_nothing(model, vectors):
    # Zeroing an all-zero group reruns the identical input, so its
    # contribution must be exactly 0.
    (zeros,) = [v for v in vectors if v["name"] == "all_zeros"]
    _, contrib = model.infer_with_contributions(zeros["features"])
    assert all(hashing.float32_hex(c) == "0x00000000" for c in contrib.values())


def test_concurrent_callers_get_identical_bits(model, vectors):
    jobs = [(v, c) for v in vectors for c in (False, True)] * 4
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job: model.run(F.validate(job[0]["features"]), job[1]), jobs))
    for (v, contributions), result in zip(jobs, results):
        raw = result[0] if contributions else result
        assert hashing.float32_hex(raw) == v["raw_score_bits"], v["name"]


def test_result_types(model, vectors):
    raw = model.infer(vectors[0]["features"])
    assert isinstance(raw, np.float32)
    assert model.version == "v1.0.0" and len(model.hash) == 64
    assert model.facts.model_hash == model.hash and model.facts.version == model.version


def test_invalid_features_are_refused(model):
    with pytest.raises(F.FeatureError, match="expected 768 features, got 3"):
        model.infer([1.0, 2.0, 3.0])
    bad = [0.0] * 768
    bad[17] = float("nan")
    with pytest.raises(F.FeatureError, match="feature 17 is NaN"):
        model.infer(bad)


def test_serving_path_matches_signature_call(model, vectors):
    # The serving path runs the signature's frozen graph in a session of its
    # own on the calling thread; it must agree with TF's public signature call
    # bit for bit, beyond the golden set: random, near-golden, extreme and
    # subnormal inputs, and the golden vectors scaled down into subnormals
    # (where a missing flush-to-zero mode would show first).
    rng = np.random.default_rng(11)
    base = np.asarray(vectors[0]["features"], dtype=np.float32)
    inputs = [rng.standard_normal(F.FEATURE_DIM) for _ in range(20)]
    inputs += [base + rng.normal(0, 1e-3, F.FEATURE_DIM) for _ in range(20)]
    inputs += [X.uniform(v) for v in X.EXTREMES]
    inputs += [base * np.float32(10.0 ** -k) for k in range(36, 46)]
    assert model.cross_check(inputs) == []


def _probe(tf):
    """A signature-like function whose output is subnormal unless its kernels flush denormals."""

    @tf.function(input_signature=[tf.TensorSpec([1, F.FEATURE_DIM], tf.float32)])
    def probe(x):
        return {model_lib.OUTPUT_NAME: tf.matmul(x, tf.fill([F.FEATURE_DIM, 1], 0.5))}

    return probe.get_concrete_function()


SUBNORMAL = np.full((1, F.FEATURE_DIM), 3e-39 / F.FEATURE_DIM * 2, np.float32)


def test_caller_thread_kernels_flush_denormals_like_tf_threads(model):
    # TF runs eager functions on its pool threads, which flush denormals to
    # zero; the serving path runs the same kernels on the caller's thread and
    # must set that mode itself, or a subnormal intermediate keeps other bits.
    tf = model._tf  # pylint: disable=protected-access
    probe = _probe(tf)
    on_tf_thread = probe(tf.constant(SUBNORMAL))[model_lib.OUTPUT_NAME].numpy()
    assert on_tf_thread.tolist() == [[0.0]]
    call = model_lib._SessionCall(tf, probe, (model_lib.OUTPUT_NAME,))  # pylint: disable=protected-access
    try:
        (served,) = call(SUBNORMAL)
        assert served.tobytes() == on_tf_thread.tobytes()
        # The same session outside the scope: its kernels do run on this
        # thread (an unflushed subnormal comes back), so the scope is needed.
        (unflushed,) = call._call(SUBNORMAL)  # pylint: disable=protected-access
        assert 0.0 < unflushed[0, 0] < np.finfo(np.float32).tiny
    finally:
        call.close()


def test_busy_model_times_out_then_serves(model, vectors):
    arr = F.validate(vectors[0]["features"])
    # Holding the lock stands in for a long call already running.
    model._lock.acquire()  # pylint: disable=protected-access
    try:
        with pytest.raises(model_lib.Busy, match="busy"):
            model.run(arr, True, timeout=0.05)
    finally:
        model._lock.release()  # pylint: disable=protected-access
    assert hashing.float32_hex(model.run(arr, True, timeout=5.0)[0]) == vectors[0]["raw_score_bits"]


def test_closed_model_refuses_calls(tmp_path, vectors):
    m = model_lib.load_model(committed_model.copy_model(str(tmp_path)))
    arr = F.validate(vectors[0]["features"])
    assert hashing.float32_hex(m.run(arr)) == vectors[0]["raw_score_bits"]
    m.close()
    with pytest.raises(model_lib.ModelError, match="closed"):
        m.run(arr)


# --- load_model refusals -----------------------------------------------------

@pytest.fixture
def copy(tmp_path):
    return committed_model.copy_model(str(tmp_path))


def _recorded_hash(path):
    return model_lib.read_facts(path).model_hash


def test_refuses_tampered_weights(copy):
    recorded = _recorded_hash(copy)
    var_dir = os.path.join(copy, "variables")
    (data,) = [n for n in os.listdir(var_dir) if n.startswith("variables.data-")]
    model_fixture.flip_byte(os.path.join(var_dir, data), 4096)
    actual = hashing.model_hash(copy)
    with pytest.raises(model_lib.ModelError) as e:
        model_lib.load_model(copy)
    assert recorded in str(e.value) and actual in str(e.value) and e.value.kind == "hash_mismatch"


def test_refuses_wrong_expected_hash(copy):
    wrong = "0" * 64
    with pytest.raises(model_lib.ModelError) as e:
        model_lib.load_model(copy, expected_hash=wrong)
    assert wrong in str(e.value) and _recorded_hash(copy) in str(e.value)


def test_refuses_wrong_version(copy):
    with pytest.raises(model_lib.ModelError, match="v1.0.0.*v9.9.9"):
        model_lib.load_model(copy, expected_version="v9.9.9")


def test_refuses_other_tensorflow_version(copy):
    meta_path = os.path.join(copy, "export_metadata.json")
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    meta["tensorflow_version"] = "0.0.1"
    with open(meta_path, "w", encoding="utf-8") as f:
        json.dump(meta, f)
    with pytest.raises(model_lib.ModelError, match="0.0.1") as e:
        model_lib.load_model(copy)
    assert e.value.kind == "tensorflow_version"


def test_refuses_missing_metadata(copy):
    os.remove(os.path.join(copy, "export_metadata.json"))
    with pytest.raises(model_lib.ModelError, match="missing .*export_metadata.json"):
        model_lib.load_model(copy)


def test_refuses_symlink_in_model_dir(copy):
    os.symlink("saved_model.pb", os.path.join(copy, "graph_alias.pb"))
    with pytest.raises(model_lib.ModelError, match="graph_alias.pb"):
        model_lib.load_model(copy)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
