# The image: image/build.py, exactly as image/image.bzl runs it for Bazel, on
# the image's own Python. Output: $out/image (OCI layout, with the SBOM as a
# referrer), $out/image.digest, $out/sbom.spdx.json.
. "$lib"
link_named debs "$debs"
link_named wheels "$wheels"
set --
for f in debs/*; do set -- "$@" --deb "$TMPDIR/$f"; done
for f in wheels/*; do set -- "$@" --wheel "$TMPDIR/$f"; done
# The SBOM's model hash is sidecar/hashing.py's, which imports numpy (Bazel's
# //sidecar:hashing brings it); unpacked here only for the build, not the image.
py -m zipfile -e wheels/numpy-*.whl site
mkdir -p "$out"
PYTHONPATH="$TMPDIR/site" py "$src/image/build.py" --repo "$src" \
  --stub "$stubs/proto/inference/v1/inference_pb2.py" \
  --stub "$stubs/proto/inference/v1/inference_pb2_grpc.py" \
  "$@" --out "$out/image" --digest-file "$out/image.digest" --sbom "$out/sbom.spdx.json"
