"""Load the wire contract from ``protos/`` at startup instead of committing generated stubs.

``grpc.protos_and_services`` compiles the .proto files in memory (grpcio-tools ships protoc), so
the stubs can never drift from the contract in the repository. The protos directory is found next
to this package (a checkout or an editable install) or through ``BUGDET_PROTOS_DIR``.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from types import ModuleType

DETECTION_PROTO = "bugdet_api/v1/detection.proto"  # not bugdet/: its module would clash with the bugdet package
INFERENCE_PROTO = "inference/grpc_service.proto"
MODEL_CONFIG_PROTO = "inference/model_config.proto"  # imported by INFERENCE_PROTO


def protos_dir() -> Path:
    configured = os.environ.get("BUGDET_PROTOS_DIR")
    directory = Path(configured) if configured else Path(__file__).resolve().parent.parent / "protos"
    if not (directory / DETECTION_PROTO).is_file():
        raise FileNotFoundError(f"{directory}: no {DETECTION_PROTO}; set BUGDET_PROTOS_DIR to the repository's protos/")
    return directory


@functools.lru_cache(maxsize=None)
def load(proto: str) -> tuple[ModuleType, ModuleType]:
    """(messages module, services module) for one proto file, compiled once per process."""
    import grpc

    directory = str(protos_dir())
    sys.path.insert(0, directory)
    try:
        return grpc.protos_and_services(proto)
    finally:
        sys.path.remove(directory)


def detection() -> tuple[ModuleType, ModuleType]:
    return load(DETECTION_PROTO)


def inference() -> tuple[ModuleType, ModuleType]:
    return load(INFERENCE_PROTO)


def model_config() -> ModuleType:
    """The messages of Triton's model configuration (``inference.ModelConfig`` and its parts)."""
    return load(MODEL_CONFIG_PROTO)[0]
