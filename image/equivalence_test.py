"""//image:equivalence in a real engine: the built image against itself is
output-identical; against a copy whose model was swapped for another trained
one it is a consensus change, named at the first request that differs.

Needs root, runc and cgroups (rootful Podman), so Bazel runs it locally; where
Podman cannot run it skips, except under CI=true, where it fails.
"""

import io
import json
import os
import shutil

import pytest

from image import assemble
from image import engine_fixtures
from image import equivalence
from image import podman
from sidecar import hashing

_LAYOUT = os.path.join("image", "image")
_OTHER_MODEL = os.path.join("models", "trust_score_v1_1")
_RANDOM = 20


@pytest.fixture(scope="module", autouse=True)
def engine_available():
    engine_fixtures.require(podman.unavailable_reason(), "the equivalence test")


@pytest.fixture(scope="module")
def engine():
    """One store for both comparisons: the second loads only the new layer.
    Under /tmp, not TEST_TMPDIR: conmon's socket paths must stay under 108 bytes."""
    e = podman.Engine("/tmp")
    yield e
    e.close()


def with_layer(src, dst, layer):
    """dst: src's image with `layer` on top (uncompressed), its blobs linked from src."""
    blobs = os.path.join(dst, "blobs", "sha256")
    os.makedirs(blobs)
    for name in os.listdir(os.path.join(src, "blobs", "sha256")):
        os.symlink(os.path.realpath(os.path.join(src, "blobs", "sha256", name)), os.path.join(blobs, name))
    shutil.copyfile(os.path.join(src, "oci-layout"), os.path.join(dst, "oci-layout"))
    desc = assemble.tagged(assemble.read_index(src))
    manifest = json.loads(assemble.read_blob(src, desc["digest"]))
    config = json.loads(assemble.read_blob(src, manifest["config"]["digest"]))
    diff_id, digest, _, size = assemble.write_layer(layer, 0, blobs)
    config["rootfs"]["diff_ids"].append(diff_id)
    config["history"].append({"created": config["created"], "created_by": "equivalence_test: another model"})
    manifest["config"] = dict(manifest["config"], **assemble.write_blob(blobs, assemble.canonical_json(config)))
    manifest["layers"].append({"mediaType": assemble.LAYER_MEDIA_TYPE, "digest": digest, "size": size})
    new = dict(mediaType=assemble.MANIFEST_MEDIA_TYPE, **assemble.write_blob(blobs, assemble.canonical_json(manifest)))
    assemble.write_index(dst, {"schemaVersion": 2, "mediaType": assemble.INDEX_MEDIA_TYPE, "manifests": [new]})
    return new["digest"]


@pytest.fixture(scope="module")
def altered(tmp_path_factory):
    """The image with /models/trust_score replaced by the other committed model
    (its own weights and golden vectors, relabelled v1.0.0) and the plan's
    expected hash updated, so it starts cleanly and serves other outputs."""
    workdir = str(tmp_path_factory.mktemp("altered"))
    model = os.path.join(workdir, "model")
    shutil.copytree(_OTHER_MODEL, model, symlinks=False)
    meta_path = os.path.join(model, "export_metadata.json")
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    with open(meta_path, "w", encoding="utf-8") as f:
        json.dump(dict(meta, version="v1.0.0"), f)
    with open(os.path.join("models", "plan.json"), encoding="utf-8") as f:
        plan = json.load(f)
    plan["entries"][0]["expected_hash"] = hashing.model_hash(model)
    plan_path = os.path.join(workdir, "plan.json")
    with open(plan_path, "w", encoding="utf-8") as f:
        json.dump(plan, f)
    layer = assemble.Layer("altered")
    assemble.add_tree(layer, model, "models/trust_score", "altered model")
    assemble.add_file(layer, plan_path, "models/plan.json", "altered plan")
    out = os.path.join(workdir, "altered-layout")
    return out, with_layer(_LAYOUT, out, layer)


def _compare(engine, old, new):
    out = io.StringIO()
    code = equivalence.compare(old, new, [_LAYOUT], _RANDOM, 23, out, engine=engine)
    print(out.getvalue())
    return code, out.getvalue().splitlines()


def test_an_image_against_itself_is_output_identical(engine):
    (digest,) = equivalence.manifest_digests(_LAYOUT)
    code, lines = _compare(engine, _LAYOUT, digest)
    assert (code, lines[-1]) == (0, f"equivalence: {equivalence.IDENTICAL}")
    # Golden (10, twice), extremes (13 + 4 per slot) at no height and height 1, then the randoms.
    assert f"({_RANDOM} random, seed 23; heights [0, 1])" in lines[-2]


def test_another_model_is_a_consensus_change_named_at_its_first_request(engine, altered):
    layout, digest = altered
    code, lines = _compare(engine, _LAYOUT, f"{layout}@{digest}")
    with open(os.path.join("models", "trust_score", "golden_vectors.json"), encoding="utf-8") as f:
        first = json.load(f)["vectors"][0]["name"]
    assert code == 1
    assert lines[-1].startswith(f"equivalence: {equivalence.DIFFERENT}; first differing: request #0 "
                                f"golden v1.0.0/{first} (no height, contributions=false): old score "), lines[-1]


def test_arguments_that_name_no_image_are_refused(tmp_path, capsys):
    missing = "sha256:" + "0" * 64
    assert equivalence.main([missing, _LAYOUT]) == 2
    assert f"{missing}: no layout lists it" in capsys.readouterr().err
    assert equivalence.main([str(tmp_path), _LAYOUT]) == 2
    assert "not an OCI layout" in capsys.readouterr().err


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v", "-s"]))
