"""Reading a CTranslate2 ``model.bin`` (the layout ctranslate2's ``specs/model_spec.py`` writes).

    u32 binary version, string spec name, u32 spec revision, u32 variable count, then per
    variable: string name, u8 rank, u32 dims[rank], u8 dtype id, u32 byte count, raw bytes;
    then u32 alias count and (alias, target) string pairs.
    A string is u16 length (with its NUL), the UTF-8 bytes, and the NUL.
    dtype ids: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16.

Quantized weights (``int8`` with a ``..._scale`` beside them) are dequantized on reading.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
BFLOAT16 = 5


class Ct2FormatError(Exception):
    pass


def _read(fh, fmt: str):
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise Ct2FormatError("unexpected end of file")
    return struct.unpack(fmt, data)


def _string(fh) -> str:
    (length,) = _read(fh, "<H")
    raw = fh.read(length)
    return raw[:-1].decode("utf-8")


def read_model(path: Path) -> tuple[str, int, dict[str, np.ndarray]]:
    """(spec name, revision, {variable name: array}) with aliases resolved."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    variables: dict[str, np.ndarray] = {}
    with open(path, "rb") as fh:
        (version,) = _read(fh, "<I")
        if version > 6:
            raise Ct2FormatError(f"unsupported CTranslate2 binary version {version}")
        name = _string(fh)
        (revision,) = _read(fh, "<I") if version >= 2 else (1,)
        (count,) = _read(fh, "<I")
        for _ in range(count):
            var = _string(fh)
            (rank,) = _read(fh, "<B")
            shape = _read(fh, f"<{rank}I") if rank else ()
            (type_id,) = _read(fh, "<B")
            (num_bytes,) = _read(fh, "<I")
            raw = fh.read(num_bytes)
            if len(raw) != num_bytes:
                raise Ct2FormatError(f"{var}: file ends after {len(raw)} of {num_bytes} bytes")
            if type_id == BFLOAT16:
                bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
                array = bits.view(np.float32)
            elif type_id in DTYPES:
                array = np.frombuffer(raw, dtype=DTYPES[type_id])
            else:
                raise Ct2FormatError(f"{var}: unknown dtype id {type_id}")
            variables[var] = array.reshape(shape) if shape else array.reshape(())
        (aliases,) = _read(fh, "<I")
        for _ in range(aliases):
            alias, target = _string(fh), _string(fh)
            variables[alias] = variables[target]
    return name, revision, _dequantize(variables)


def _dequantize(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, value in variables.items():
        if name.endswith("_scale"):
            continue
        scale = variables.get(f"{name}_scale")
        if scale is not None and value.dtype in (np.int8, np.int16):
            value = value.astype(np.float32) / np.asarray(scale, dtype=np.float32).reshape(-1, 1)
        out[name] = value
    return out
