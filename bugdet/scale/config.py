"""The ``scale:`` section: where segmentation and embedding run, and when search becomes approximate."""

from typing import Literal

from pydantic import Field

from bugdet.config_base import Section


class IndexConfig(Section):
    flat_below: int = Field(
        50_000, ge=0,
        description="Vector searches over fewer rows than this are exact (FAISS Flat); above it an IVF index is "
                    "trained on a sample (near-duplicate range search, kNN).",
    )
    nlist: int | None = Field(
        None, ge=1, description="IVF inverted lists; null = 2 * sqrt(N), at most (training sample) / 39 (FAISS's training minimum).",
    )
    nprobe: int = Field(
        8, ge=1, description="IVF lists visited per query: higher = better recall, slower (nprobe = nlist is exact).",
    )
    pq_m: int | None = Field(
        None, ge=1,
        description="Product-quantise the stored vectors into this many sub-codes (IVFn,PQm: ~m bytes/vector) for "
                    "kNN over very large N; null = keep full vectors (IVFn,Flat). Range searches always use full "
                    "vectors, since a cosine threshold on PQ-approximated distances would be off by the code error.",
    )
    train_sample: int = Field(
        65_536, ge=1_000, description="At most this many vectors (random, seeded) train the IVF coarse quantiser (64 per list suffice; PQ takes at least 9984).",
    )
    seed: int = Field(0, description="Seed of the training sample.")


class ScaleConfig(Section):
    backend: Literal["inprocess", "ray"] = Field(
        "inprocess",
        description="Where segment/embed run their models: inprocess, or ray (actors on a local or remote Ray "
                    "cluster; results are written by this process).",
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster to use with backend ray: null = start a local one, auto = the cluster this "
                    "machine belongs to, ray://HOST:10001 = a remote cluster through Ray Client.",
    )
    num_actors: int = Field(2, ge=1, description="Ray actors, each holding one segmenter or embedder.")
    cpus_per_actor: float = Field(
        1.0, gt=0, description="CPUs Ray reserves per actor (also the actor's torch/onnxruntime threads when filter.embed.threads is 0).",
    )
    gpus_per_actor: float | None = Field(
        None, ge=0,
        description="GPUs per actor; null = 1 when the Ray cluster has GPUs and the model can use one "
                    "(SAM, CLIP), else 0.",
    )
    frames_per_batch: int = Field(4, ge=1, description="Frames per Ray batch in segmentation.")
    items_per_batch: int = Field(
        256, ge=1, description="Mask crops (or frames) per Ray batch in embedding (crops are cut on the actor).",
    )
    index: IndexConfig = Field(default_factory=IndexConfig)
