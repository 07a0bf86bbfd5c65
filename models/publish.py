"""Publishes a model directory as a reproducible artifact (release manager).

  bazel run //models:publish -- models/trust_score_v1_1 --registry=HOST/REPO [--plain-http]
  bazel run //models:publish -- models/trust_score_v1_1 --tar=/srv/veid-models/model-v1.1.0.tar

The directory must be a model whose files hash to its export_metadata.json's
model_hash. `--registry` pushes the OCI artifact (sidecar/artifact.py: one tar
layer, the empty config, the version and model hash as annotations) by digest
and tags it with the version; `--tar` writes the tar and `<tar>.sha256`
(sha256sum's format) for serving over HTTPS or from a mirror. Either way it
prints the `info` JSON a governance proposal carries, naming the artifact and
the model hash, which every validator's `stage` takes as it is. The same
directory gives the same digest on every machine.
"""

import json
import os
import sys
import tempfile

from absl import app
from absl import flags

from image import assemble
from sidecar import artifact
from sidecar import hashing
from sidecar import model as model_lib
from sidecar import oci_registry

flags.DEFINE_string("registry", "", "Push to this repository: HOST[:PORT]/REPOSITORY (registry.example.org/veid/models).")
flags.DEFINE_bool("plain-http", False, "Talk http:// to the registry instead of https:// (a loopback registry).")
flags.DEFINE_string("tar", "", "Also write the artifact as this .tar file, and its sha256 as <tar>.sha256.")
FLAGS = flags.FLAGS


class PublishError(Exception):
    pass


def _config_descriptor() -> dict:
    return {"mediaType": assemble.EMPTY_MEDIA_TYPE, "digest": oci_registry.digest_of(b"{}"), "size": 2}


def manifest(tar_digest: str, tar_size: int, version: str, model_hash: str) -> bytes:
    """The OCI image manifest of a model artifact whose one layer is the tar."""
    return assemble.canonical_json({
        "schemaVersion": 2,
        "mediaType": assemble.MANIFEST_MEDIA_TYPE,
        "artifactType": artifact.ARTIFACT_TYPE,
        "config": _config_descriptor(),
        "layers": [{"mediaType": artifact.LAYER_MEDIA_TYPE, "digest": tar_digest, "size": tar_size,
                    "annotations": {artifact.TITLE_ANNOTATION: f"model-{version}.tar"}}],
        "annotations": {artifact.VERSION_ANNOTATION: version, artifact.MODEL_HASH_ANNOTATION: model_hash},
    })


def build(model_dir: str) -> tuple[bytes, bytes, model_lib.ModelFacts]:
    """(tar, manifest, facts) of a model directory that hashes to its recorded model_hash."""
    try:
        facts = model_lib.read_facts(model_dir)
        actual = hashing.model_hash(model_dir)
    except (model_lib.ModelError, hashing.ModelHashError, OSError) as e:
        raise PublishError(f"{model_dir}: {e}") from None
    if actual != facts.model_hash:
        raise PublishError(f"{model_dir} hashes to {actual} but its {hashing.METADATA_FILE} records "
                           f"{facts.model_hash}: not a released model")
    with tempfile.TemporaryFile() as f:
        artifact.pack(model_dir, f)
        f.seek(0)
        tar = f.read()
    return tar, manifest(oci_registry.digest_of(tar), len(tar), facts.version, facts.model_hash), facts


def push(registry: oci_registry.Registry, tar: bytes, data: bytes, tag: str) -> str:
    """Pushes the artifact's blobs, then its manifest by digest and as `tag`; returns the digest."""
    registry.push_blob(b"{}")
    registry.push_blob(tar)
    digest = oci_registry.digest_of(data)
    for reference in (digest, tag):
        registry.put_manifest(reference, data, assemble.MANIFEST_MEDIA_TYPE)
    return digest


def write_tar(path: str, tar: bytes) -> str:
    """Writes the tar and `<path>.sha256` (each through a temp file and a rename); returns the sha256 hex."""
    hexdigest = oci_registry.digest_of(tar).split(":", 1)[1]
    for target, data in ((path, tar), (path + ".sha256", f"{hexdigest}  {os.path.basename(path)}\n".encode())):
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(target)), prefix=".publish-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    return hexdigest


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: publish MODEL_DIR [--registry=HOST/REPO [--plain-http]] [--tar=FILE]", file=sys.stderr)
        return 2
    if not FLAGS.registry and not FLAGS.tar:
        print("publish: give --registry=HOST/REPO, --tar=FILE or both", file=sys.stderr)
        return 2
    # `bazel run` starts us inside runfiles; operators name paths from where they ran it.
    here = os.environ.get("BUILD_WORKING_DIRECTORY", "")
    model_dir = os.path.join(here, argv[1])
    try:
        tar, data, facts = build(model_dir)
        info = {"model_hash": facts.model_hash}
        if FLAGS.tar:
            hexdigest = write_tar(os.path.join(here, FLAGS.tar), tar)
            # Served over HTTPS, the same artifact is https://…/<file>?checksum=sha256:<hex>.
            info["model_artifact"] = f"{FLAGS.tar}?checksum=sha256:{hexdigest}"
            print(f"wrote {FLAGS.tar} (sha256:{hexdigest}) and {FLAGS.tar}.sha256", file=sys.stderr)
        if FLAGS.registry:
            host, _, repository = FLAGS.registry.partition("/")
            if not host or not repository or "@" in repository:
                raise PublishError(f"--registry={FLAGS.registry!r}: expected HOST[:PORT]/REPOSITORY")
            scheme = "http" if FLAGS["plain-http"].value else "https"
            registry = oci_registry.Registry(f"{scheme}://{host}", repository,
                                             oci_registry.auth_from_environment())
            digest = push(registry, tar, data, facts.version)
            info["model_artifact"] = f"oci://{host}/{repository}@{digest}"
            print(f"pushed {facts.version} as oci://{host}/{repository}@{digest} (tag {facts.version})", file=sys.stderr)
    except (PublishError, oci_registry.RegistryError, OSError) as e:
        print(f"publish: {e}", file=sys.stderr)
        return 1
    # What the proposal's "info" carries (README: "Upgrading the model at a block height").
    print(json.dumps(info, sort_keys=True))
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
