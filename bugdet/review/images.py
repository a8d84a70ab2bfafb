"""PNG renderings the page shows: mask thumbnails, a mask tinted on its frame, prompt previews.

All drawing is server-side with OpenCV so the page needs no image code of its own, and every
rendering is a pure function of stored data (cacheable by the browser per URL).
"""

from __future__ import annotations

import base64

import cv2
import numpy as np

from bugdet.embed.base import letterbox_square
from bugdet.segment.masks import mask_crop

THUMB = 96
TINT = np.array([255, 0, 200], np.float32)   # magenta: visible on foliage, sky and walls alike
PREVIEW_RGBA = (255, 0, 200, 110)


def png_bytes(image: np.ndarray) -> bytes:
    """RGB or RGBA uint8 -> PNG bytes."""
    if image.ndim == 3 and image.shape[2] == 4:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    elif image.ndim == 3:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    else:
        bgr = image
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def mask_thumbnail(rgb: np.ndarray, mask: np.ndarray, size: int = THUMB) -> np.ndarray:
    """What the embedder saw (the masked crop on grey), as a square thumbnail."""
    return letterbox_square(mask_crop(rgb, mask), size)


def mask_on_frame(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The frame with the mask tinted and outlined, so a tester sees where the mask sits."""
    out = rgb.astype(np.float32)
    out[mask] = 0.45 * out[mask] + 0.55 * TINT
    out = out.astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (255, 255, 0), 1)
    return out


def mask_rgba(mask: np.ndarray) -> np.ndarray:
    """A transparent layer with the mask tinted, laid over the frame in the page's canvas."""
    layer = np.zeros((*mask.shape, 4), np.uint8)
    layer[mask] = PREVIEW_RGBA
    edge = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    layer[edge] = (255, 255, 0, 255)
    return layer
