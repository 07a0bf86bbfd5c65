"""Every finite float32 feature vector gets a verdict from a real sidecar, in canonical bytes.

Extreme inputs push the model itself out of range (1e38 * weights overflows,
relu passes +Inf, Inf - Inf in the next matmul is NaN), so besides "no
INTERNAL" this checks that a NaN raw score or contribution comes back as the
canonical quiet NaN, that the hashes cover exactly the returned bits, that the
reason codes are the documented rules applied to the input, and that asking
twice gives the same bytes.
"""

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from inference.v1 import inference_pb2 as pb
from inference.v1 import inference_pb2_grpc as pb_grpc
from ops import sidecar_process
from sidecar import golden
from sidecar import hashing
from sidecar import scoring
from tests import extreme_values as X

CANONICAL_NAN_HEX = hashing.float32_hex(scoring.CANONICAL_NAN)


@pytest.fixture(scope="module")
def sidecar():
    with sidecar_process.serving() as s:
        yield s


@pytest.fixture(scope="module")
def stub(sidecar):
    with sidecar.channel() as ch:
        yield pb_grpc.InferenceServiceStub(ch)


NAN_SEEN = []


def check(stub, values: np.ndarray) -> pb.ComputeScoreResponse:
    req = pb.ComputeScoreRequest(features=values, return_contributions=True)
    try:
        r = stub.ComputeScore(req, timeout=30)
    except grpc.RpcError as e:
        raise AssertionError(f"finite input rejected: {e.code().name}: {e.details()}") from None
    raw_hex = hashing.float32_hex(r.raw_score)
    assert 0 <= r.score <= 100
    if np.isnan(r.raw_score):
        assert raw_hex == CANONICAL_NAN_HEX
        NAN_SEEN.append(1)
    for name, c in r.feature_contributions.items():
        assert not np.isnan(c) or hashing.float32_hex(c) == CANONICAL_NAN_HEX, name
    raw = np.float32(r.raw_score)
    assert r.exact_output_hash == hashing.exact_hash([raw])
    assert r.output_hash == hashing.chain_hash([raw])
    assert r.input_hash == hashing.chain_hash(values)
    assert hashing.float32_hex(r.confidence) == hashing.float32_hex(scoring.confidence(raw))
    assert tuple(r.reason_codes) == scoring.reason_codes(values, r.score, scoring.confidence(raw))
    again = stub.ComputeScore(req, timeout=30)
    again.compute_time_ms = r.compute_time_ms
    assert again.SerializeToString(deterministic=True) == r.SerializeToString(deterministic=True)
    return r


@pytest.mark.parametrize("fill", X.EXTREMES)
def test_uniform_extremes(stub, fill):
    r = check(stub, X.uniform(fill))
    # The reproducer (all 1e38) was INTERNAL; the scope rule saturates now.
    assert ("INSUFFICIENT_SCOPES" in r.reason_codes) == (fill * 10 < 2)


def test_huge_inputs_make_the_model_produce_nan(stub):
    # The case the canonical NaN is for: not hypothetical.
    assert np.isnan(check(stub, X.uniform(1e38)).raw_score)


@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(values=X.features())
def test_mixes(stub, values):
    check(stub, values)


def test_no_internal_errors_and_golden_vectors_unchanged(sidecar, stub):
    assert NAN_SEEN, "no input produced a NaN raw score: the canonical-NaN path went untested"
    assert sidecar.inference_errors() == 0
    for v in golden.load_vectors(sidecar.model_path):
        r = stub.ComputeScore(pb.ComputeScoreRequest(features=v["features"], return_contributions=True), timeout=30)
        assert r.exact_output_hash == v["exact_output_hash"]
        assert {k: hashing.float32_hex(x) for k, x in r.feature_contributions.items()} == v["contribution_bits"]
    assert "Traceback" not in sidecar.log()


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
