"""The public EK-100 hand-object detections format, read and written without generated code.

Each video's file (``{video_id}.pkl``, often under a participant folder ``P01/P01_01.pkl``) is a
pickled list of serialized protobuf messages, one per frame, with this schema (proto3)::

    message FloatVector     { float x = 1; float y = 2; }
    message BBox            { float top_left_x = 1; float top = 2; float right = 3; float bottom = 4; }
    message HandDetection   { BBox bbox = 1; float score = 2; HandState state = 3;
                              FloatVector object_offset = 4; HandSide side = 5; }
    message ObjectDetection { BBox bbox = 1; float score = 2; }
    message Detections      { string video_id = 1; int32 frame_number = 2;
                              repeated HandDetection hands = 3; repeated ObjectDetection objects = 4; }

Boxes are normalised to [0, 1]; ``object_offset`` is the 100DOH offset already multiplied out
(``mag * 10000 * (dx, dy)``) and divided by the frame width/height; ``frame_number`` is 1-based
at the video's native frame rate. The protobuf wire format is decoded here directly (varints,
32-bit floats and length-delimited fields), so no protobuf package is needed.
"""
from __future__ import annotations

import struct

from ..types import DetectionFormatError


# ----------------------------------------------------------------------------- wire format
def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise DetectionFormatError("truncated varint in protobuf message")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise DetectionFormatError("varint longer than 10 bytes in protobuf message")


def parse_fields(buf: bytes) -> dict[int, list]:
    """Field number -> list of raw values (int for varints, bytes for length-delimited and fixed)."""
    out: dict[int, list] = {}
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 1:
            val, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wire == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise DetectionFormatError(f"unsupported protobuf wire type {wire} (field {field})")
        if i > len(buf):
            raise DetectionFormatError(f"truncated protobuf field {field}")
        out.setdefault(field, []).append(val)
    return out


def _f32(fields: dict, n: int) -> float:
    v = fields.get(n)
    if not v:
        return 0.0
    if not isinstance(v[-1], bytes) or len(v[-1]) != 4:
        raise DetectionFormatError(f"field {n} should be a 32-bit float")
    return struct.unpack("<f", v[-1])[0]


def _int(fields: dict, n: int) -> int:
    v = fields.get(n)
    if not v:
        return 0
    if not isinstance(v[-1], int):
        raise DetectionFormatError(f"field {n} should be a varint")
    x = v[-1]
    return x - (1 << 64) if x >= 1 << 63 else x


def _msg(fields: dict, n: int) -> dict:
    v = fields.get(n)
    return parse_fields(v[-1]) if v else {}


def _bbox(f: dict) -> tuple[float, float, float, float]:
    return (_f32(f, 1), _f32(f, 2), _f32(f, 3), _f32(f, 4))


def decode_frame(buf: bytes) -> dict:
    """One serialized ``Detections`` message -> plain dict."""
    f = parse_fields(buf)
    vid = f.get(1, [b""])[-1]
    hands = []
    for hb in f.get(3, []):
        h = parse_fields(hb)
        off = _msg(h, 4)
        hands.append({"bbox": _bbox(_msg(h, 1)), "score": _f32(h, 2), "state": _int(h, 3),
                      "offset": (_f32(off, 1), _f32(off, 2)), "side": _int(h, 5)})
    objects = [{"bbox": _bbox(_msg(o, 1)), "score": _f32(o, 2)} for o in (parse_fields(b) for b in f.get(4, []))]
    return {"video_id": vid.decode("utf-8", "replace") if isinstance(vid, bytes) else str(vid),
            "frame_number": _int(f, 2), "hands": hands, "objects": objects}


# ----------------------------------------------------------------------------- writing
def _enc_varint(x: int) -> bytes:
    x &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = x & 0x7F
        x >>= 7
        out.append(b | (0x80 if x else 0))
        if not x:
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _enc_varint(field << 3 | wire)


def _enc_f32(field: int, v: float) -> bytes:
    return _key(field, 5) + struct.pack("<f", float(v)) if v else b""


def _enc_int(field: int, v: int) -> bytes:
    return _key(field, 0) + _enc_varint(int(v)) if v else b""


def _enc_msg(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _enc_varint(len(payload)) + payload


def _enc_bbox(b) -> bytes:
    return b"".join(_enc_f32(i + 1, v) for i, v in enumerate(b))


def encode_frame(frame: dict) -> bytes:
    """Inverse of :func:`decode_frame` (for exporting detections in the EK-100 format)."""
    out = bytearray()
    vid = frame.get("video_id", "").encode()
    if vid:
        out += _enc_msg(1, vid)
    out += _enc_int(2, frame.get("frame_number", 0))
    for h in frame.get("hands", []):
        p = _enc_msg(1, _enc_bbox(h["bbox"])) + _enc_f32(2, h["score"]) + _enc_int(3, h["state"])
        p += _enc_msg(4, _enc_f32(1, h["offset"][0]) + _enc_f32(2, h["offset"][1])) + _enc_int(5, h["side"])
        out += _enc_msg(3, p)
    for o in frame.get("objects", []):
        out += _enc_msg(4, _enc_msg(1, _enc_bbox(o["bbox"])) + _enc_f32(2, o["score"]))
    return bytes(out)
