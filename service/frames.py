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


def decode_encoded(data: bytes, what: str = "frame") -> np.ndarray:
    """PNG/JPEG bytes -> RGB uint8 [H, W, 3]."""
    if not data:
        raise FrameError(f"{what}: empty image bytes")
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
    if order == "RGBA":
        return pixels[..., :3]
    return pixels[..., 2::-1]


def fit_to_input(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to the model's input size (area filter when shrinking, linear when growing)."""
    if rgb.shape[0] == height and rgb.shape[1] == width:
        return np.ascontiguousarray(rgb)
    shrinking = rgb.shape[0] > height or rgb.shape[1] > width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(rgb), (width, height), interpolation=interpolation)
