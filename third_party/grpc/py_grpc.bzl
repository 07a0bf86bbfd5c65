"""py_grpc_library: Python protobuf + gRPC stubs from one .proto file."""

load("@pypi//:requirements.bzl", "requirement")
load("@rules_python//python:defs.bzl", "py_library")

def py_grpc_library(name, src, proto_root, deps = [], **kwargs):
    """Generates <base>_pb2.py and <base>_pb2_grpc.py as a py_library.

    Modules are importable by the proto's path below `proto_root`, so
    proto/inference/v1/inference.proto with proto_root "proto" imports as
    `from inference.v1 import inference_pb2`.

    Args:
      name: the py_library.
      src: the .proto file, in this package.
      proto_root: the folder (from the workspace root) protoc imports from.
      deps: py_library deps of the generated code besides protobuf and grpcio.
      **kwargs: passed to py_library (visibility, testonly, ...).
    """
    package = native.package_name()
    if not (package + "/").startswith(proto_root + "/"):
        fail("py_grpc_library: package {} is not under proto_root {}".format(package, proto_root))
    base = src[:-len(".proto")]
    outs = [base + "_pb2.py", base + "_pb2_grpc.py"]
    depth = package[len(proto_root):].count("/")
    native.genrule(
        name = name + "_gen",
        srcs = [src],
        outs = outs,
        cmd = " ".join([
            "$(execpath //third_party/grpc:protoc)",
            "-I" + proto_root,
            "--python_out=$(GENDIR)/" + proto_root,
            "--grpc_python_out=$(GENDIR)/" + proto_root,
            "$(execpath {})".format(src),
        ]),
        tools = ["//third_party/grpc:protoc"],
        visibility = kwargs.get("visibility"),
    )
    py_library(
        name = name,
        srcs = outs,
        imports = ["/".join([".."] * depth) or "."],
        deps = deps + [
            requirement("grpcio"),
            requirement("protobuf"),
        ],
        **kwargs
    )
