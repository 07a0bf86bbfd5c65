# inference_pb2{,_grpc}.py as //proto/inference/v1:inference_py_grpc_gen makes
# them: third_party/grpc/protoc.py on the pinned grpcio-tools, run from the
# source root with -Iproto. Output: $out/proto/inference/v1/.
. "$lib"
link_named wheels "$wheels"
for wheel in wheels/*.whl; do
  py -m zipfile -e "$wheel" site
done
mkdir -p "$out/proto"
cd "$src"
PYTHONPATH="$TMPDIR/site" py third_party/grpc/protoc.py -Iproto \
  --python_out="$out/proto" --grpc_python_out="$out/proto" proto/inference/v1/inference.proto
# Bazel leaves every action output r-x, and image/build.py keeps a file's x
# bit (0755 vs 0644), so the stubs must be executable here too or the app
# layer differs from Bazel's.
chmod 555 "$out/proto/inference/v1/inference_pb2.py" "$out/proto/inference/v1/inference_pb2_grpc.py"
