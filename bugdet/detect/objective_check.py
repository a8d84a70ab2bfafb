"""Before training: do the built-in simulations look like the project's labeled bugs?

Runs :mod:`bugdet.augment.realism` with the project's embedder on the train split's labeled
frames, so a studio learns *before* trusting a detector that an objective teaches a bug its game
has not shown (the simulated camera clipping that looks like a wall close-up in another engine).
Only the built-in simulations are checked: exemplar pairs are the project's own bugs pasted, so
they resemble them by construction. The result goes into the training summary; with pretrained
embeddings, a simulation that does not resemble its labels is also said to the user (``notify``).
With an unpretrained tower the verdicts are recorded but not said: measured on the playtest world,
they called the FPPC simulation unlike the real FPPC frames, and it is the simulation that
transfers best there (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Callable, Sequence

from bugdet.augment.assemble import objectives_for
from bugdet.augment.realism import Resemblance, check_objectives
from bugdet.detect.config import DetectConfig
from bugdet.detect.data import LabeledFrame, ObjectiveSampler
from bugdet.errors import BugdetError
from bugdet.project import Project


def check_simulations(project: Project, cfg: DetectConfig, sampler: ObjectiveSampler, labeled: Sequence[LabeledFrame],
                      notify: Callable[[str], None] | None = None) -> dict:
    """``{"checked": [...], "skipped": reason or None}`` for the training summary."""
    if cfg.check_objective_pairs <= 0:
        return {"checked": [], "skipped": "detect.check_objective_pairs is 0"}
    real_bugs = {t: [f.rgb for f in labeled if f.known[i] and f.labels[i] > 0] for i, t in enumerate(cfg.bug_types)}
    goods = [f.rgb for f in labeled if not f.is_bug]
    simulations = objectives_for([t for t in cfg.bug_types if real_bugs[t]], mode="off",
                                 params_by_type=project.config.augment.objectives)
    if not simulations or not goods:
        return {"checked": [], "skipped": "no labeled bug frames of a simulated type, or no labeled good frames"}
    try:
        from bugdet.embed.pipeline import build_embedder

        embedder = build_embedder(project)
    except BugdetError as exc:  # the check is advice; training does not need the embedder
        return {"checked": [], "skipped": f"no embedder: {exc}"}
    found: list[Resemblance] = check_objectives(simulations, sampler.targets, sampler.sources, real_bugs, goods,
                                                embedder.embed_images, pairs=cfg.check_objective_pairs, seed=cfg.seed)
    if notify is not None and embedder.pretrained:
        for r in found:
            if r.verdict == "does not resemble":
                notify(f"{r.describe()}: its objective may teach a bug your game does not show; label a few more "
                       f"{r.bug_type} frames and turn on augment.exemplars, or tune augment.objectives.{r.bug_type}")
    trust = None if embedder.pretrained else ("unpretrained embeddings: these verdicts were measured to be unreliable "
                                              "(docs/benchmarks.md); they are not acted on")
    return {"checked": [r.as_dict() for r in found], "skipped": None, "embeddings_pretrained": embedder.pretrained,
            "caveat": trust}
