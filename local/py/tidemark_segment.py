"""An independent reader of Tidemark segment format v1, written from docs/segment-format.md.

It shares no code with the Rust implementation, so tests that read segments with it check the
format against its specification, not the writer against itself.
"""
import io
import struct

import crc32c
import zstandard

MAGIC = b"TDMK"
VERSION = 1
TIMESTAMP_TYPES = {0: "CREATE_TIME", 1: "LOG_APPEND_TIME", 2: "NO_TIMESTAMP_TYPE"}


class SegmentError(Exception):
    pass


def _read_exact(stream, n, what):
    # A decompressing stream may return fewer bytes than asked for before its end.
    chunks, remaining = [], n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise SegmentError(f"truncated inside {what}")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_segment(data: bytes):
    """Returns (header, records). Records are dicts with bytes or None for nullable fields."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise SegmentError("not a tidemark segment")
    version, header_len = struct.unpack(">HH", data[4:8])
    if version != VERSION:
        raise SegmentError(f"unsupported version {version}")
    if len(data) < header_len:
        raise SegmentError("truncated header")
    head = data[:header_len]
    (stored_header_crc,) = struct.unpack(">I", head[-4:])
    if crc32c.crc32c(head[:-4]) != stored_header_crc:
        raise SegmentError("header checksum mismatch")
    compression, flags, topic_len = struct.unpack(">BBH", head[8:12])
    topic = head[12 : 12 + topic_len].decode("utf-8")
    fields = struct.unpack(">iqqIqqQQII", head[12 + topic_len : header_len - 4])
    header = dict(
        topic=topic,
        partition=fields[0],
        first_offset=fields[1],
        last_offset=fields[2],
        record_count=fields[3],
        min_timestamp=fields[4],
        max_timestamp=fields[5],
        uncompressed_len=fields[6],
        body_len=fields[7],
        records_crc32c=fields[8],
        body_crc32c=fields[9],
        compression={0: "none", 1: "zstd"}.get(compression, compression),
    )
    if flags != 0:
        raise SegmentError("unknown flags")
    body = data[header_len:]
    if len(body) != header["body_len"]:
        raise SegmentError(f"body is {len(body)} bytes, header says {header['body_len']}")
    if crc32c.crc32c(body) != header["body_crc32c"]:
        raise SegmentError("body checksum mismatch")
    if header["compression"] == "zstd":
        stream = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=False)
    elif header["compression"] == "none":
        stream = io.BytesIO(body)
    else:
        raise SegmentError(f"unknown compression {compression}")

    records, checksum, consumed = [], 0, 0
    for _ in range(header["record_count"]):
        length_bytes = _read_exact(stream, 4, "record length")
        (frame_len,) = struct.unpack(">I", length_bytes)
        frame = _read_exact(stream, frame_len, "record")
        checksum = crc32c.crc32c(length_bytes + frame, checksum)
        consumed += 4 + frame_len
        records.append(_parse_frame(frame))
    if stream.read(1):
        raise SegmentError("bytes after the last record")
    if consumed != header["uncompressed_len"] or checksum != header["records_crc32c"]:
        raise SegmentError("records checksum or length mismatch")
    return header, records


def _parse_frame(frame):
    view = io.BytesIO(frame)
    offset, timestamp, type_code = struct.unpack(">qqB", _read_exact(view, 17, "record fields"))

    def nullable():
        (n,) = struct.unpack(">i", _read_exact(view, 4, "length"))
        return None if n == -1 else _read_exact(view, n, "bytes")

    key, value = nullable(), nullable()
    (count,) = struct.unpack(">I", _read_exact(view, 4, "header count"))
    headers = []
    for _ in range(count):
        (key_len,) = struct.unpack(">I", _read_exact(view, 4, "header key length"))
        header_key = _read_exact(view, key_len, "header key").decode("utf-8")
        headers.append((header_key, nullable()))
    if view.read(1):
        raise SegmentError("bytes after the record's fields")
    return dict(
        offset=offset,
        timestamp=timestamp,
        timestamp_type=TIMESTAMP_TYPES[type_code],
        key=key,
        value=value,
        headers=headers,
    )
