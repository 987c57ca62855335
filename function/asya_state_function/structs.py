"""Conversions between protobuf Structs and the plain JSON-like values Kubernetes expects.

Owns: reading a Struct as a dict whose whole numbers are ints again (a Struct
stores every number as a double, so replicas: 2 arrives as 2.0) and writing
a dict back into a Struct.

Must not: interpret the values.
"""

from __future__ import annotations

from typing import Any

from crossplane.function import resource
from google.protobuf import struct_pb2


def plain(value: Any) -> Any:
    """``value`` with integral floats turned back into ints, recursively."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    result: dict[str, Any] = plain(resource.struct_to_dict(struct))
    return result


def to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    struct: struct_pb2.Struct = resource.dict_to_struct(value)
    return struct
