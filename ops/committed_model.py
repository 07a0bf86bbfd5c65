"""One place that hands out a private, dereferenced copy of a model directory.

Under Bazel every runfile is a symlink, which the model hash (rightly) refuses,
so tests, benchmarks and ops.cross_cpu never hash or load models/trust_score in
place. The source is models/trust_score relative to the working directory (the
repo root both under plain pytest and Bazel), overridable with VEID_MODEL_DIR.
"""

import json
import os
import shutil

MODEL_SRC = os.environ.get("VEID_MODEL_DIR", os.path.join("models", "trust_score"))


def copy_model(dst_dir: str, src: str = MODEL_SRC) -> str:
    """Copies a model (the committed one by default) into dst_dir/trust_score
    with symlinks followed; returns that path."""
    dst = os.path.join(dst_dir, "trust_score")
    shutil.copytree(src, dst, symlinks=False)
    return dst


def copy_models(dst_dir: str, src: str = os.path.dirname(MODEL_SRC) or ".") -> str:
    """Copies the committed models directory (every model and plan) into
    dst_dir/models with symlinks followed, as an operator's models directory
    would look; returns that path."""
    dst = os.path.join(dst_dir, "models")
    os.makedirs(dst)
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if name.endswith(".json") or os.path.isfile(os.path.join(path, "export_metadata.json")):
            (shutil.copytree if os.path.isdir(path) else shutil.copyfile)(path, os.path.join(dst, name))
    return dst


def relabel(models_dir: str, src: str, dst: str, version: str) -> str:
    """models_dir/dst: a copy of models_dir/src whose metadata says `version`.

    export_metadata.json is outside the model hash, so the copy keeps src's
    hash and outputs: a third plan entry with a distinct version, without a
    third training run. Returns the new directory.
    """
    path = os.path.join(models_dir, dst)
    shutil.copytree(os.path.join(models_dir, src), path)
    meta_path = os.path.join(path, "export_metadata.json")
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    meta["version"] = version
    with open(meta_path, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    return path
