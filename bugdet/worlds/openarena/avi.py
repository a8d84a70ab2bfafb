"""Reads the uncompressed AVI files the engine's ``video`` command writes.

With ``cl_aviMotionJpeg 0`` ioquake3 writes raw bottom-up BGR frames in ``00dc`` chunks of the
``movi`` list. OpenCV's reader crashed on these files here, and a RIFF walk is a few lines, so
frames are read directly (memory-mapped, random access, tolerant of a file cut short).
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

import numpy as np

from bugdet.errors import InputError


class AviFrames:
    """Random access to the frames of one uncompressed engine AVI (BGR, top row first)."""

    def __init__(self, path: Path, width: int, height: int):
        self.path = Path(path)
        self.width, self.height = width, height
        self._stride = (width * 3 + 3) & ~3  # DIB rows are padded to 4 bytes
        self._file = open(self.path, "rb")
        try:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            self._file.close()
            raise InputError(f"{self.path}: empty video file") from None
        self._offsets = self._index()

    def _index(self) -> list[int]:
        data = self._map
        movi = data.find(b"movi")
        if movi < 0:
            raise InputError(f"{self.path}: not an AVI written by the engine (no movi list)")
        need = self._stride * self.height
        offsets: list[int] = []
        pos = movi + 4
        while pos + 8 <= len(data):
            chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
            if chunk == b"idx1" or pos + 8 + size > len(data):
                break  # the index, or a chunk cut short by a killed engine
            if chunk == b"00dc":
                if size < need:
                    raise InputError(f"{self.path}: frame of {size} bytes, expected {need} "
                                     f"({self.width}x{self.height} uncompressed; is cl_aviMotionJpeg 0?)")
                offsets.append(pos + 8)
            pos += 8 + size + (size & 1)
        return offsets

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index: int) -> np.ndarray:
        raw = np.frombuffer(self._map, np.uint8, self._stride * self.height, self._offsets[index])
        rows = raw.reshape(self.height, self._stride)[:, : self.width * 3]
        return rows.reshape(self.height, self.width, 3)[::-1].copy()  # AVI rows run bottom-up

    def close(self) -> None:
        self._map.close()
        self._file.close()

    def __enter__(self) -> AviFrames:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
