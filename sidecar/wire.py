"""Reads a request's repeated float field as float32 without a Python float per element.

np.asarray over a repeated field converts each of its 768 values to a Python
float and back. proto3 packs repeated floats, and the protobuf runtime
serializes a message's known fields in field-number order, so the
serialization of a message whose first field is the repeated float starts
with that field's tag, the payload's length and then the values as
little-endian float32 bytes, exactly as the message holds them. Serializing
is one C call; the array is a view of its bytes. Whenever the bytes do not
start that way, the values take the element-wise path, so the result is the
same either way.
"""

import numpy as np

_WIRE_TYPE_LEN = 2


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if not n:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def packed_floats(message, field) -> np.ndarray:
    """message's repeated float `field` (a FieldDescriptor) as a float32 array:
    a read-only view of the serialization when it is the first field there."""
    values = getattr(message, field.name)
    n = len(values)
    if n:
        data = message.SerializeToString()
        header = _varint(field.number << 3 | _WIRE_TYPE_LEN) + _varint(4 * n)
        if data.startswith(header):
            return np.frombuffer(data, dtype="<f4", count=n, offset=len(header))
    return np.asarray(values, dtype=np.float32)
