"""One place that hands out a private, dereferenced copy of a model directory.

Under Bazel every runfile is a symlink, which the model hash (rightly) refuses,
so tests, benchmarks and ops.cross_cpu never hash or load models/trust_score in
place. The source is models/trust_score relative to the working directory (the
repo root both under plain pytest and Bazel), overridable with VEID_MODEL_DIR.
"""

import os
import shutil

MODEL_SRC = os.environ.get("VEID_MODEL_DIR", os.path.join("models", "trust_score"))


def copy_model(dst_dir: str, src: str = MODEL_SRC) -> str:
    """Copies a model (the committed one by default) into dst_dir/trust_score
    with symlinks followed; returns that path."""
    dst = os.path.join(dst_dir, "trust_score")
    shutil.copytree(src, dst, symlinks=False)
    return dst
