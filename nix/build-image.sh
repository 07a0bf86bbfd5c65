# The image: image/build.py, exactly as image/image.bzl runs it for Bazel, on
# the image's own Python. Output: $out/image (OCI layout), $out/image.digest.
. "$lib"
link_named debs "$debs"
link_named wheels "$wheels"
set --
for f in debs/*; do set -- "$@" --deb "$TMPDIR/$f"; done
for f in wheels/*; do set -- "$@" --wheel "$TMPDIR/$f"; done
mkdir -p "$out"
py "$src/image/build.py" --repo "$src" \
  --stub "$stubs/proto/inference/v1/inference_pb2.py" \
  --stub "$stubs/proto/inference/v1/inference_pb2_grpc.py" \
  "$@" --out "$out/image" --digest-file "$out/image.digest"
