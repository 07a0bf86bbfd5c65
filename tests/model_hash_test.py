"""The committed model's manifest hash, and that tampering of any kind changes it."""

import json
import os

import pytest

from ops import committed_model
from sidecar import hashing
from tests import model_fixture


@pytest.fixture
def model(tmp_path):
    return committed_model.copy_model(str(tmp_path))


def _data_file(model_dir):
    var_dir = os.path.join(model_dir, "variables")
    (name,) = [n for n in os.listdir(var_dir) if n.startswith("variables.data-")]
    return os.path.join(var_dir, name)


def test_committed_hash_matches_metadata(model):
    with open(os.path.join(model, "export_metadata.json"), encoding="utf-8") as f:
        meta = json.load(f)
    assert hashing.model_hash(model) == meta["model_hash"]


def test_expected_files(model):
    assert hashing.list_model_files(model) == [
        "fingerprint.pb",
        "golden_vectors.json",
        "saved_model.pb",
        "variables/variables.data-00000-of-00001",
        "variables/variables.index",
    ]


@pytest.mark.parametrize("offset", [0, -1, 12345])
def test_flipping_a_weight_byte_changes_it(model, offset):
    before = hashing.model_hash(model)
    model_fixture.flip_byte(_data_file(model), offset)
    assert hashing.model_hash(model) != before


def test_flipping_a_graph_byte_changes_it(model):
    before = hashing.model_hash(model)
    model_fixture.flip_byte(os.path.join(model, "saved_model.pb"), 1000)
    assert hashing.model_hash(model) != before


def test_editing_golden_vectors_changes_it(model):
    before = hashing.model_hash(model)
    with open(os.path.join(model, "golden_vectors.json"), "a", encoding="utf-8") as f:
        f.write(" ")
    assert hashing.model_hash(model) != before


def test_renaming_a_file_changes_it(model):
    before = hashing.model_hash(model)
    os.rename(os.path.join(model, "fingerprint.pb"), os.path.join(model, "fingerprint.pb.bak"))
    assert hashing.model_hash(model) != before


def test_adding_a_file_changes_it(model):
    before = hashing.model_hash(model)
    open(os.path.join(model, "variables", "extra"), "wb").close()
    assert hashing.model_hash(model) != before


def test_moving_bytes_between_files_changes_it(model):
    before = hashing.model_hash(model)
    index = os.path.join(model, "variables", "variables.index")
    data = _data_file(model)
    with open(index, "rb") as f:
        idx = f.read()
    with open(data, "ab") as f:
        f.write(idx[-1:])
    with open(index, "wb") as f:
        f.write(idx[:-1])
    assert hashing.model_hash(model) != before


def test_symlinks_refused(model, tmp_path):
    link = os.path.join(model, "variables", "alias")
    os.symlink(_data_file(model), link)
    with pytest.raises(hashing.ModelHashError, match="variables/alias"):
        hashing.model_hash(model)
    os.remove(link)
    os.symlink(os.path.join(model, "variables"), os.path.join(model, "vars2"))
    with pytest.raises(hashing.ModelHashError, match="vars2"):
        hashing.model_hash(model)


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
