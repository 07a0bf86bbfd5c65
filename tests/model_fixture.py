"""Tampering with a model copy (ops.committed_model makes the copy)."""

import os


def flip_byte(path: str, offset: int = 0) -> None:
    """Flips every bit of one byte; a negative offset counts from the end."""
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        pos = offset % size
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0xFF]))
