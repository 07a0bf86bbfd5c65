"""The generated stubs import and carry the contract's service descriptor."""

import unittest

from inference.v1 import inference_pb2
from inference.v1 import inference_pb2_grpc

_RPCS = ["GetModelInfo", "ComputeScore", "HealthCheck", "GetMetrics", "VerifyDeterminism"]


class StubsTest(unittest.TestCase):
    def test_service_descriptor(self):
        service = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"]
        self.assertEqual(service.full_name, "inference.v1.InferenceService")
        self.assertEqual([m.name for m in service.methods], _RPCS)

    def test_grpc_stub_and_servicer(self):
        for rpc in _RPCS:
            self.assertTrue(hasattr(inference_pb2_grpc.InferenceServiceServicer, rpc))
        self.assertTrue(callable(inference_pb2_grpc.add_InferenceServiceServicer_to_server))

    def test_messages_roundtrip(self):
        request = inference_pb2.ComputeScoreRequest(features=[0.5] * 768, return_contributions=True)
        decoded = inference_pb2.ComputeScoreRequest.FromString(request.SerializeToString())
        self.assertEqual(list(decoded.features), [0.5] * 768)
        self.assertTrue(decoded.return_contributions)


if __name__ == "__main__":
    unittest.main()
