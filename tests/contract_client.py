"""A client built from tests/contract/inference_contract.proto, independent of the real stubs.

The contract is compiled at test time into a descriptor set and loaded into a
private descriptor pool: its messages share full names with the real stubs
(the service must be inference.v1.InferenceService to reach the server), so
they cannot live in the default pool of the same process. Calls go through
grpc with raw bytes, so nothing of the real generated code is involved.
"""

import os

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import unknown_fields
from grpc_tools import protoc

CONTRACT_DIR = os.path.join("tests", "contract")
CONTRACT_FILE = "inference_contract.proto"
SERVICE = "inference.v1.InferenceService"


class Contract:
    def __init__(self, out_dir: str):
        out = os.path.join(out_dir, "inference_contract.pb")
        rc = protoc.main(["protoc", f"-I{CONTRACT_DIR}", f"--descriptor_set_out={out}", CONTRACT_FILE])
        if rc != 0:
            raise RuntimeError(f"protoc failed on {CONTRACT_DIR}/{CONTRACT_FILE} with {rc}")
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())
        self.pool = descriptor_pool.DescriptorPool()
        for file_proto in fds.file:
            self.pool.Add(file_proto)
        self.service = self.pool.FindServiceByName(SERVICE)

    def message(self, name: str):
        """The contract's class for inference.v1.<name>."""
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(f"inference.v1.{name}"))

    def call(self, channel: grpc.Channel, method: str, request, timeout: float = 30.0):
        """Sends a contract request; returns (raw response bytes, contract-decoded response)."""
        m = self.service.FindMethodByName(method)
        if request.DESCRIPTOR is not m.input_type:
            raise TypeError(f"{method} takes {m.input_type.full_name}, not {request.DESCRIPTOR.full_name}")
        raw = channel.unary_unary(f"/{SERVICE}/{method}")(request.SerializeToString(), timeout=timeout)
        resp = message_factory.GetMessageClass(m.output_type).FromString(raw)
        return raw, resp


def unknown_field_numbers(msg) -> list[int]:
    """Field numbers the contract did not recognise, in msg and its sub-messages."""
    found = [f.field_number for f in unknown_fields.UnknownFieldSet(msg)]
    for field, value in msg.ListFields():
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue
        for sub in value if field.is_repeated else [value]:
            found += unknown_field_numbers(sub)
    return found
