"""protoc with the gRPC Python plugin, both from the pinned grpcio-tools wheel."""

import sys

from grpc_tools import protoc
import importlib.resources


def main(argv):
    # The well-known types (google/protobuf/*.proto) ship inside grpc_tools.
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    return protoc.main(["protoc", f"-I{well_known}", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
