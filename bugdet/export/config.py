"""The ``export:`` section of the project file."""

from pydantic import Field

from bugdet.config_base import Section


class ExportConfig(Section):
    models_dir: str = Field("packages", description="Directory (relative to the project) that model packages are written into; point `bugdet serve --models` at it.")
    checkpoint: str = Field("", description="Detector checkpoint (relative to the project) to export; empty = the newest models/*/detector.pt written by training.")
    name: str = Field("detector", description="Model name in the package; clients ask for a model by this name.")
    calibration_frames: int = Field(16, ge=1, description="Project frames (validation split first) used for the torch/ONNX parity check.")
    tolerance: float = Field(1e-4, gt=0, description="Largest absolute difference between torch and ONNX outputs before export fails.")
    exporter: str = Field("dynamo", pattern="^(dynamo|torchscript)$", description="ONNX exporter: dynamo (torch.export; falls back to torchscript when tracing fails) or torchscript.")
    opset: int = Field(18, ge=13, description="ONNX opset version of the exported graph.")
