"""CLIP embedding: model/weights resolution, torch vs ONNX parity, incremental storage, bad inputs.

ViT-S-32 is used with random init (``pretrained: none``, explicitly unpretrained: nothing can be
downloaded here); it is built once per session and exported to ONNX once per session.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bugdet.embed.clip_onnx import OnnxClipEmbedder
from bugdet.embed.clip_torch import TorchClipEmbedder
from bugdet.embed.config import EmbedConfig
from bugdet.embed.models import build_open_clip_model, resolve_model_spec
from bugdet.embed.pipeline import embed_masks
from bugdet.embed.store import get_model, load_embeddings
from bugdet.errors import BugdetError, ConfigError, InputError
from bugdet.imageio import read_rgb
from bugdet.segment.masks import iter_masks, mask_crop
from bugdet.store.frames import get_frame
from filter_toydata import add_frames, new_project

SHAPES = [[("red", "circle"), ("green", "rect")], [("blue", "circle"), ("yellow", "rect")]]


@pytest.fixture(scope="session")
def vit_s32():
    spec = resolve_model_spec(EmbedConfig(model="ViT-S-32", pretrained="none"))
    model, tokenizer = build_open_clip_model(spec)
    return spec, model, tokenizer


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory, vit_s32):
    spec, model, tokenizer = vit_s32
    root = tmp_path_factory.mktemp("onnx-cache")
    OnnxClipEmbedder(spec, root, model=model, tokenizer=tokenizer)  # export once for the session
    return root


def _crops(project, limit=8):
    conn = project.connect()
    try:
        out = []
        for m in iter_masks(conn):
            rgb = read_rgb(project.root / get_frame(conn, m.frame_id).path)
            out.append(mask_crop(rgb, m.decode()))
        return out[:limit]
    finally:
        conn.close()


def test_onnx_embeddings_match_open_clip(tmp_path, vit_s32, onnx_cache):
    spec, model, tokenizer = vit_s32
    project = new_project(tmp_path / "p")
    add_frames(project, SHAPES * 2)
    crops = _crops(project)
    assert len(crops) == 8
    eager = TorchClipEmbedder(spec, model=model, tokenizer=tokenizer)
    onnx = OnnxClipEmbedder(spec, onnx_cache, tokenizer=tokenizer)
    a, b = eager.embed_images(crops), onnx.embed_images(crops)
    assert a.shape == b.shape == (8, 384)
    # Same fp32 graph, different kernels (fused attention, op reordering): differences are float
    # rounding, ~1e-7 measured; 1e-4 on unit vectors still means cosine > 0.99999.
    assert np.abs(a - b).max() < 1e-4
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    texts = ["a photo of tree.", "grass", "a red circle"]
    assert np.abs(eager.embed_texts(texts) - onnx.embed_texts(texts)).max() < 1e-4
    # and it really is an embedding of the input, not a constant
    assert np.abs(b[0] - b[1]).max() > 1e-3


def test_onnx_export_is_cached_per_model_and_weights(vit_s32, onnx_cache):
    spec, _, tokenizer = vit_s32
    directory = onnx_cache / spec.key
    before = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    assert {"image.onnx", "text.onnx", "meta.json"} <= set(before)
    OnnxClipEmbedder(spec, onnx_cache, tokenizer=tokenizer)  # no model given: must come from the cache
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == before
    other = resolve_model_spec(EmbedConfig(model="ViT-S-32", pretrained="none", init_seed=1))
    assert other.key != spec.key


def test_embedding_is_incremental_compact_and_labelled_unpretrained(tmp_path, vit_s32):
    spec, model, tokenizer = vit_s32
    project = new_project(tmp_path / "p")
    add_frames(project, SHAPES)
    embedder = TorchClipEmbedder(spec, model=model, tokenizer=tokenizer)
    first = embed_masks(project, embedder)
    assert (first.embedded, first.already, first.total) == (4, 0, 4)
    assert "UNPRETRAINED" in first.describe()
    again = embed_masks(project, embedder)
    assert (again.embedded, again.already) == (0, 4)
    add_frames(project, SHAPES[:1], seed=1)
    third = embed_masks(project, embedder)
    assert (third.embedded, third.already, third.total) == (2, 4, 6)

    conn = project.connect()
    try:
        info = get_model(conn, spec.key)
        assert info is not None and not info.pretrained and "unpretrained" in info.label
        ids, vectors = load_embeddings(project.root, conn, spec.key, "mask")
        shards = [project.root / r["path"] for r in conn.execute("SELECT path FROM embedding_shards")]
    finally:
        conn.close()
    assert len(ids) == 6 and len(shards) == 2
    assert all(np.load(p).dtype == np.float16 for p in shards)
    direct = embedder.embed_images(_crops(project, 6))
    assert np.abs(vectors - direct).max() < 2e-3  # float16 storage


def test_no_masks_embeds_nothing(tmp_path, vit_s32):
    spec, model, tokenizer = vit_s32
    project = new_project(tmp_path / "p")
    report = embed_masks(project, TorchClipEmbedder(spec, model=model, tokenizer=tokenizer))
    assert (report.embedded, report.total) == (0, 0)


def test_local_dir_and_checkpoint_file_load_the_same_weights(tmp_path, vit_s32):
    import open_clip
    import torch

    spec, model, tokenizer = vit_s32
    directory = tmp_path / "clip"
    directory.mkdir()
    (directory / "open_clip_config.json").write_text(json.dumps(
        {"model_name": "ViT-S-32", "model_cfg": open_clip.get_model_config("ViT-S-32"), "preprocess_cfg": {}}))
    torch.save(model.state_dict(), directory / "open_clip_pytorch_model.bin")
    crops = [np.full((40, 30, 3), c, np.uint8) for c in (0, 128, 255)]
    reference = TorchClipEmbedder(spec, model=model, tokenizer=tokenizer).embed_images(crops)

    local = resolve_model_spec(EmbedConfig(pretrained=f"local-dir:{directory}"))
    assert local.source == "local-dir" and local.pretrained
    assert np.abs(TorchClipEmbedder(local).embed_images(crops) - reference).max() < 1e-5

    checkpoint = tmp_path / "weights.pt"
    torch.save(model.state_dict(), checkpoint)
    from_file = resolve_model_spec(EmbedConfig(model="ViT-S-32", pretrained=str(checkpoint)))
    assert from_file.source == "file" and from_file.key != spec.key
    assert np.abs(TorchClipEmbedder(from_file).embed_images(crops) - reference).max() < 1e-5


def test_bad_model_inputs_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="unknown open_clip model 'ViT-Nope-32'"):
        resolve_model_spec(EmbedConfig(model="ViT-Nope-32", pretrained="none"))
    with pytest.raises(InputError, match="checkpoint file .*missing.pt not found"):
        resolve_model_spec(EmbedConfig(model="ViT-S-32", pretrained=str(tmp_path / "missing.pt")))
    with pytest.raises(ConfigError, match="not a pretrained tag of ViT-B-32"):
        resolve_model_spec(EmbedConfig(model="ViT-B-32", pretrained="no_such_tag"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="open_clip_config.json"):
        resolve_model_spec(EmbedConfig(pretrained=f"local-dir:{empty}"))
    (empty / "open_clip_config.json").write_text(json.dumps({"model_cfg": {}}))
    with pytest.raises(InputError, match="no weights file"):
        resolve_model_spec(EmbedConfig(pretrained=f"local-dir:{empty}"))
    # A real tag that cannot be downloaded offline: one clear line, never a silent random init.
    spec = resolve_model_spec(EmbedConfig(model="ViT-B-32", pretrained="laion2b_s34b_b79k"))
    with pytest.raises(BugdetError, match="cannot load pretrained weights ViT-B-32/laion2b_s34b_b79k.*pretrained: none"):
        build_open_clip_model(spec)
