"""An independent reader of Tidemark segment format v1, written from docs/segment-format.md.

It shares no code with the Rust implementation, so tests that read segments with it check the
format against its specification, not the writer against itself.
"""
import io
import struct

import crc32c
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"TDMK"
VERSION = 1
TIMESTAMP_TYPES = {0: "CREATE_TIME", 1: "LOG_APPEND_TIME", 2: "NO_TIMESTAMP_TYPE"}
FLAG_ENCRYPTED = 0x01
FLAG_WRITE_MARKS = 0x02


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


def read_segment(data: bytes, unwrap_key=None):
    """Returns (header, records). Records are dicts with bytes or None for nullable fields.

    A sealed segment needs `unwrap_key(wrapped_key) -> 32-byte data key` (KMS Decrypt).
    """
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
    fixed_end = 12 + topic_len + 64
    fields = struct.unpack(">iqqIqqQQII", head[12 + topic_len : fixed_end])
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
    if flags & ~(FLAG_ENCRYPTED | FLAG_WRITE_MARKS):
        raise SegmentError("unknown flags")
    position = fixed_end
    envelope = None
    if flags & FLAG_ENCRYPTED:
        (wrapped_len,) = struct.unpack(">H", head[position : position + 2])
        wrapped = head[position + 2 : position + 2 + wrapped_len]
        nonce = head[position + 2 + wrapped_len : position + 14 + wrapped_len]
        envelope = dict(wrapped_key=wrapped, nonce=nonce)
        position += 14 + wrapped_len
    marks = []
    if flags & FLAG_WRITE_MARKS:
        (count,) = struct.unpack(">H", head[position : position + 2])
        position += 2
        for _ in range(count):
            marks.append(struct.unpack(">qq", head[position : position + 16]))
            position += 16
        if not marks or marks[-1][0] != header["last_offset"]:
            raise SegmentError("write marks must end at the last offset")
    if position + 4 != header_len:
        raise SegmentError("the header's sections do not fill its length")
    header["write_marks"] = marks
    header["encrypted"] = envelope is not None
    body = data[header_len:]
    if len(body) != header["body_len"]:
        raise SegmentError(f"body is {len(body)} bytes, header says {header['body_len']}")
    if crc32c.crc32c(body) != header["body_crc32c"]:
        raise SegmentError("body checksum mismatch")
    if envelope is not None:
        if unwrap_key is None:
            raise SegmentError("the segment is sealed and no key service was given")
        # The tag authenticates the header from the magic through max_timestamp.
        authenticated = data[: 12 + topic_len + 40]
        try:
            body = AESGCM(unwrap_key(envelope["wrapped_key"])).decrypt(envelope["nonce"], body, authenticated)
        except Exception as error:
            raise SegmentError(f"the sealed body does not open: {error!r}") from error
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
