"""The ``filter:`` section of the project file: embedding, refinement, clustering, weak labels."""

from pydantic import Field

from bugdet.config_base import Section
from bugdet.embed.config import EmbedConfig
from bugdet.refine.config import RefineConfig
from bugdet.weaklabel.config import WeakLabelConfig


class ClusterConfig(Section):
    k: int | None = Field(None, ge=1, description="k-means clusters; null = chosen by silhouette on a sample.")
    k_min: int = Field(2, ge=2, description="Smallest k tried when k is chosen automatically.")
    k_max: int = Field(64, ge=2, description="Largest k tried when k is chosen automatically.")
    k_sample: int = Field(5000, ge=100, description="Points sampled to score each candidate k (silhouette is quadratic).")
    niter: int = Field(25, ge=1, description="k-means (Lloyd) iterations.")
    seed: int = Field(0, description="Seed of k-means++ seeding, the k search sample and balancing.")
    hac_distance: float | None = Field(
        None, gt=0, le=2,
        description="Merge k-means clusters whose centroids are within this cosine distance (average-linkage HAC); "
                    "null = no merge.",
    )
    cap_per_cluster: int | None = Field(
        None, ge=1, description="Most masks kept per cluster in the bank; null = the median cluster size."
    )
    dedupe_similarity: float | None = Field(
        0.98, ge=0, le=1, description="Cosine similarity at or above which two masks are near duplicates; null = keep all."
    )
    exemplars_per_cluster: int = Field(8, ge=1, description="Thumbnails per cluster on the summary contact sheet.")


class FilterConfig(Section):
    embed: EmbedConfig = Field(default_factory=EmbedConfig)
    refine: RefineConfig = Field(default_factory=RefineConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    weaklabel: WeakLabelConfig = Field(default_factory=WeakLabelConfig)
