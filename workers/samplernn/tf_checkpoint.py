"""Read TensorFlow "tensor bundle" checkpoints (``*.index`` + ``*.data-*``) without TensorFlow.

Keras ``save_weights`` writes this format. It is small enough to read directly:

* ``<prefix>.index`` is an SSTable in LevelDB's table format. Its 48-byte footer points at an
  index block, whose entries point at data blocks; every block is a run of prefix-compressed
  ``key -> value`` entries followed by restart offsets and a 5-byte trailer (compression type +
  CRC). Keys are the variable names, sorted; the empty key holds a ``BundleHeaderProto``.
* Every other value is a ``BundleEntryProto`` (protobuf): dtype, shape, shard id, byte offset and
  size of the tensor in ``<prefix>.data-<shard>-of-<num_shards>``, which holds raw little-endian
  tensor bytes.

Only what Keras writes is supported: uncompressed blocks, unpartitioned numeric tensors. Anything
else raises ``TFCheckpointError`` with the reason.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5
# tensorflow/core/framework/types.proto DataType values for the numeric types we read.
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
           9: np.int64, 10: np.bool_, 14: np.uint16, 17: np.uint16, 19: np.float16,
           22: np.uint32, 23: np.uint64}
_DT_STRING = 7
_DT_BFLOAT16 = 14


class TFCheckpointError(ValueError):
    """The files are not a TensorFlow checkpoint this reader understands."""


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lives (a decoded ``BundleEntryProto``)."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    partitioned: bool


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise TFCheckpointError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Decode one protobuf message into ``(field_number, value)`` pairs (wire types 0, 1, 2, 5)."""
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            fields.append((number, value))
        elif wire == 1:
            fields.append((number, struct.unpack_from("<Q", buf, pos)[0]))
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            fields.append((number, buf[pos:pos + length]))
            pos += length
        elif wire == 5:
            fields.append((number, struct.unpack_from("<I", buf, pos)[0]))
            pos += 4
        else:
            raise TFCheckpointError(f"unsupported protobuf wire type {wire}")
    return fields


def _decode_entry(value: bytes) -> BundleEntry:
    dtype = shard = offset = size = 0
    shape: list[int] = []
    partitioned = False
    for number, field in _proto_fields(value):
        if number == 1:
            dtype = int(field)  # type: ignore[arg-type]
        elif number == 2:
            for dim_number, dim in _proto_fields(field):  # type: ignore[arg-type]
                if dim_number == 2:  # TensorShapeProto.dim -> Dim.size (field 1)
                    sizes = [v for n, v in _proto_fields(dim) if n == 1]  # type: ignore[arg-type]
                    shape.append(int(sizes[0]) if sizes else 0)
        elif number == 3:
            shard = int(field)  # type: ignore[arg-type]
        elif number == 4:
            offset = int(field)  # type: ignore[arg-type]
        elif number == 5:
            size = int(field)  # type: ignore[arg-type]
        elif number == 7:
            partitioned = True
    return BundleEntry(dtype, tuple(shape), shard, offset, size, partitioned)


def _block_entries(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """All ``(key, value)`` pairs of one table block."""
    if offset + size + _BLOCK_TRAILER_SIZE > len(data):
        raise TFCheckpointError("block handle points past the end of the index file")
    if data[offset + size] != 0:
        raise TFCheckpointError(
            f"compressed index block (type {data[offset + size]}); only uncompressed is supported")
    block = data[offset:offset + size]
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * num_restarts
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos:pos + value_len]))
        pos += value_len
    return entries


def read_index(index_path: str | Path) -> tuple[int, dict[str, BundleEntry]]:
    """Parse ``<prefix>.index``: the number of data shards and every tensor's entry by name."""
    data = Path(index_path).read_bytes()
    if len(data) < _FOOTER_SIZE:
        raise TFCheckpointError(f"{index_path} is too short to be a checkpoint index")
    footer = data[-_FOOTER_SIZE:]
    if struct.unpack("<Q", footer[-8:])[0] != _TABLE_MAGIC:
        raise TFCheckpointError(f"{index_path} is not a TensorFlow checkpoint index (bad magic)")
    _meta_off, pos = _varint(footer, 0)
    _meta_size, pos = _varint(footer, pos)
    index_off, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    num_shards = 1
    entries: dict[str, BundleEntry] = {}
    for _last_key, handle in _block_entries(data, index_off, index_size):
        block_off, p = _varint(handle, 0)
        block_size, _ = _varint(handle, p)
        for key, value in _block_entries(data, block_off, block_size):
            if key == b"":
                for number, field in _proto_fields(value):
                    if number == 1:
                        num_shards = int(field)  # type: ignore[arg-type]
                    elif number == 2 and field != 0:
                        raise TFCheckpointError("big-endian checkpoints are not supported")
            else:
                entries[key.decode("utf-8")] = _decode_entry(value)
    return num_shards, entries


class TFCheckpoint:
    """A checkpoint prefix such as ``logdir/run/model.ckpt-12``; tensors are read on demand."""

    def __init__(self, prefix: str | Path):
        self.prefix = str(prefix)
        index = Path(self.prefix + ".index")
        if not index.is_file():
            raise TFCheckpointError(f"no checkpoint index at {index}")
        self.num_shards, self.entries = read_index(index)

    def keys(self) -> list[str]:
        """Variable names as stored (object-graph paths for Keras ``save_weights``)."""
        return sorted(self.entries)

    def shape(self, key: str) -> tuple[int, ...]:
        """Stored shape of one tensor."""
        return self.entries[key].shape

    def read(self, key: str) -> np.ndarray:
        """One tensor as a numpy array of its stored dtype and shape."""
        entry = self.entries.get(key)
        if entry is None:
            raise TFCheckpointError(f"variable {key!r} is not in checkpoint {self.prefix}")
        if entry.partitioned:
            raise TFCheckpointError(f"variable {key!r} is partitioned; not supported")
        if entry.dtype == _DT_STRING or entry.dtype not in _DTYPES:
            raise TFCheckpointError(f"variable {key!r} has unsupported dtype {entry.dtype}")
        shard = Path(f"{self.prefix}.data-{entry.shard_id:05d}-of-{self.num_shards:05d}")
        with open(shard, "rb") as f:
            f.seek(entry.offset)
            raw = f.read(entry.size)
        dtype = np.dtype(_DTYPES[entry.dtype]).newbyteorder("<")
        count = int(np.prod(entry.shape)) if entry.shape else 1
        if len(raw) != entry.size or entry.size != count * dtype.itemsize:
            raise TFCheckpointError(
                f"variable {key!r}: {len(raw)} bytes stored, shape {entry.shape} needs "
                f"{count * dtype.itemsize}")
        array = np.frombuffer(raw, dtype=dtype).reshape(entry.shape)
        if entry.dtype == _DT_BFLOAT16:
            return (array.astype(np.uint32) << 16).view(np.float32)
        return array.astype(dtype.newbyteorder("="))
