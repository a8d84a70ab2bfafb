"""Turn the pixels a client sends into the uint8 RGB array a model package expects.

Engines read back raw framebuffers (RGBA or BGRA, rows often padded to an alignment, hence
``stride``); tools send PNG/JPEG. Everything ends as a contiguous uint8 [H, W, 3] RGB array at the
package's input size. Every way the bytes can disagree with the stated geometry raises
:class:`FrameError` with a message naming the frame and the problem, which the servicer maps to
INVALID_ARGUMENT: a bad frame must never reach onnxruntime or crash a worker.

:func:`fit_to_input` is also what ``bugdet export`` uses on its parity frames, so the parity check
measures exactly the preprocessing the service applies.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Raw pixel layouts the wire format names, with bytes per pixel and the channel order.
RAW_FORMATS: dict[str, tuple[int, str]] = {"RGBA8": (4, "RGBA"), "BGRA8": (4, "BGRA"), "RGB8": (3, "RGB")}

#: Largest frame side accepted (8K), so a forged header cannot make the server allocate gigabytes.
MAX_SIDE = 8192


class FrameError(ValueError):
    """The frame's bytes cannot be turned into an image as described."""


def encoded_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding, or None if neither.

    Checked before decoding so that a tiny file declaring a huge image (a decompression bomb)
    is refused instead of making the server allocate gigabytes.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        i += 2 + length
    return None


def declared_size(data: bytes, what: str = "frame") -> tuple[int, int]:
    """(width, height) an encoded frame's header declares; FrameError unless a PNG or JPEG
    header declares sides within 1..MAX_SIDE."""
    if not data:
        raise FrameError(f"{what}: empty image bytes")
    size = encoded_size(data)
    if size is None:
        raise FrameError(f"{what}: {len(data)} bytes are not a decodable PNG or JPEG image")
    if max(size) > MAX_SIDE or min(size) <= 0:
        raise FrameError(f"{what}: encoded image is {size[0]}x{size[1]}; sides must be within 1..{MAX_SIDE}")
    return size


def decode_encoded(data: bytes, what: str = "frame") -> np.ndarray:
    """PNG/JPEG bytes -> RGB uint8 [H, W, 3]."""
    declared_size(data, what)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise FrameError(f"{what}: {len(data)} bytes are not a decodable PNG or JPEG image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_raw(data: bytes, width: int, height: int, stride: int, pixel_format: str, what: str = "frame") -> np.ndarray:
    """Raw pixel rows -> RGB uint8 [H, W, 3]; ``stride`` is bytes per row (0 means tightly packed)."""
    if pixel_format not in RAW_FORMATS:
        raise FrameError(f"{what}: unknown raw pixel format {pixel_format!r} (expected one of {', '.join(RAW_FORMATS)})")
    bpp, order = RAW_FORMATS[pixel_format]
    if width <= 0 or height <= 0:
        raise FrameError(f"{what}: raw frame needs positive width and height, got {width}x{height}")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise FrameError(f"{what}: {width}x{height} exceeds the largest accepted side {MAX_SIDE}")
    row = width * bpp
    stride = stride or row
    if stride < row:
        raise FrameError(f"{what}: stride {stride} is smaller than width*{bpp} = {row} bytes")
    expected = stride * (height - 1) + row
    if len(data) < expected or len(data) > stride * height:
        raise FrameError(
            f"{what}: {len(data)} bytes do not match {width}x{height} {pixel_format} with stride {stride} "
            f"(expected {stride * height} bytes)"
        )
    buf = np.frombuffer(data, np.uint8)
    if len(buf) < stride * height:
        buf = np.concatenate([buf, np.zeros(stride * height - len(buf), np.uint8)])
    pixels = buf.reshape(height, stride)[:, :row].reshape(height, width, bpp)
    if order == "RGB":
        return pixels
    # cv2.cvtColor reads the padded rows in place and writes a contiguous RGB image in one SIMD
    # pass: twice as fast as slicing the channels off with numpy and copying the strided view
    # (which fit_to_input would otherwise have to do before resizing).
    return cv2.cvtColor(pixels, cv2.COLOR_RGBA2RGB if order == "RGBA" else cv2.COLOR_BGRA2RGB)


def fit_to_input(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to the model's input size (area filter when shrinking, linear when growing)."""
    if rgb.shape[0] == height and rgb.shape[1] == width:
        return np.ascontiguousarray(rgb)
    shrinking = rgb.shape[0] > height or rgb.shape[1] > width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(rgb), (width, height), interpolation=interpolation)
