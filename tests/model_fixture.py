"""One place that hands tests a private, dereferenced copy of the committed model.

Under Bazel every runfile is a symlink, which the model hash (rightly) refuses,
so tests never hash or load models/trust_score in place. The source is
models/trust_score relative to the working directory (the repo root both under
plain pytest and Bazel), overridable with VEID_MODEL_DIR.
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


def flip_byte(path: str, offset: int = 0) -> None:
    """Flips every bit of one byte; a negative offset counts from the end."""
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        pos = offset % size
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0xFF]))
