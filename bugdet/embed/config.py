"""The ``filter.embed`` section: which CLIP model embeds mask crops, and how."""

from typing import Literal

from pydantic import Field

from bugdet.config_base import Section


class EmbedConfig(Section):
    model: str = Field(
        "ViT-B-32",
        description="open_clip architecture (see open_clip.list_models()), e.g. ViT-B-32, ViT-S-32.",
    )
    pretrained: str = Field(
        "laion2b_s34b_b79k",
        description=(
            "Weights: an open_clip pretrained tag (downloaded when online), a checkpoint file path, "
            "local-dir:DIR (open_clip_config.json + weights, hf-hub layout), or none for an explicitly "
            "unpretrained random-init model (its embeddings are labelled unpretrained)."
        ),
    )
    init_seed: int = Field(0, description="Seed of the random init used when pretrained is none (keeps runs reproducible).")
    backend: Literal["torch", "onnx"] = Field(
        "onnx",
        description="onnx: towers exported once (cached under embeddings/onnx/) and run with onnxruntime; torch: open_clip eager.",
    )
    batch_size: int = Field(32, ge=1, description="Crops per forward pass.")
    threads: int = Field(0, ge=0, description="CPU threads for torch/onnxruntime; 0 = all cores.")
    store_dtype: Literal["float16", "float32"] = Field(
        "float16", description="On-disk precision of embeddings (float16 halves the size; cosine error ~1e-3)."
    )
    prompt_template: str = Field(
        "a photo of {}.", description="Template wrapped around each text prompt before the text tower ({} = prompt)."
    )
