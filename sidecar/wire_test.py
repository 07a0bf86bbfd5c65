"""wire.packed_floats returns exactly what np.asarray over the repeated field returns."""

import sys

import numpy as np
import pytest

from inference.v1 import inference_pb2 as pb
from sidecar import wire

FEATURES = pb.ComputeScoreRequest.DESCRIPTOR.fields_by_name["features"]


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


def _request(values, **kwargs) -> pb.ComputeScoreRequest:
    return pb.ComputeScoreRequest(features=values, **kwargs)


SPECIAL = np.array([0.0, -0.0, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38, np.inf, -np.inf, 1.0 / 3],
                   dtype=np.float32)


@pytest.mark.parametrize("n", [1, 2, 31, 32, 767, 768, 769, 5000])
def test_same_bits_as_elementwise_conversion(n):
    rng = np.random.default_rng(n)
    values = np.concatenate([SPECIAL, rng.standard_normal(n).astype(np.float32) * 10.0 ** rng.integers(-30, 30, n)])[:n]
    req = _request(values.tolist(), return_contributions=True,
                   metadata=pb.InferenceMetadata(block_height=2**62, request_id="r" * 300))
    got = wire.packed_floats(req, FEATURES)
    assert got.dtype == np.float32 and got.shape == (n,)
    assert _bits(got) == _bits(np.asarray(req.features, dtype=np.float32))
    assert not got.flags.writeable, "the fast path (a view of the serialized bytes) was not taken"


def test_nan_stays_nan():
    req = _request([1.0, float("nan"), 2.0])
    got = wire.packed_floats(req, FEATURES)
    assert np.isnan(got[1]) and got[0] == 1.0 and got[2] == 2.0


def test_no_features_is_an_empty_array():
    got = wire.packed_floats(_request([], metadata=pb.InferenceMetadata(block_height=7)), FEATURES)
    assert got.shape == (0,) and got.dtype == np.float32


def test_parsed_unpacked_encoding():
    # A peer may send the floats unpacked (one tag per value) or split over
    # several packed runs; the parsed message re-serializes them packed.
    values = [1.5, -2.25, 3.0e-7]
    unpacked = b"".join(b"\x0d" + np.float32(v).tobytes() for v in values)
    split = b"\x0a\x04" + np.float32(values[0]).tobytes() + b"\x0a\x08" + np.array(values[1:], "<f4").tobytes()
    for data in (unpacked, split, b"\x18\x01" + unpacked):
        req = pb.ComputeScoreRequest.FromString(data)
        assert _bits(wire.packed_floats(req, FEATURES)) == _bits(np.array(values, dtype=np.float32))


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16383, 16384, 2**21, 2**28 + 5])
def test_varint(n):
    from google.protobuf.internal import encoder  # pylint: disable=import-outside-toplevel

    assert wire._varint(n) == encoder._VarintBytes(n)  # pylint: disable=protected-access


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"] + sys.argv[1:]))
