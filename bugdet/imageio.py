"""Image I/O at the library's boundary. Inside bugdet every image is RGB ``uint8`` HxWx3 and
every mask is ``bool`` HxW; OpenCV's BGR order never leaks past these functions."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from bugdet.errors import InputError


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_rgb(data: bytes, what: str = "image") -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{what}: bytes are not a decodable PNG/JPEG image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a half-written image."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(path.suffix or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode {path}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


def read_mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise InputError(f"{path}: not a readable mask image")
    if mask.ndim == 3:
        mask = mask[..., 0]
    return mask > 0


def read_ids(path: Path) -> np.ndarray:
    """A 16-bit object-ID map (0 = background)."""
    ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if ids is None:
        raise InputError(f"{path}: not a readable ID map")
    return ids.astype(np.int32)


def pixel_sha256(rgb: np.ndarray) -> str:
    """Content hash of decoded pixels: the same frame hashes the same whatever its container."""
    h = hashlib.sha256()
    h.update(f"{rgb.shape}|{rgb.dtype}".encode())
    h.update(np.ascontiguousarray(rgb).tobytes())
    return h.hexdigest()


def dhash64(rgb: np.ndarray) -> int:
    """64-bit difference hash, for near-duplicate detection between consecutive frames."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def hamming64(a: int, b: int) -> int:
    return (a ^ b).bit_count()
