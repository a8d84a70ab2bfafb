"""The simulation-vs-reality check (issue 17's lever 2) on real playtest frames and objectives."""

from __future__ import annotations

import numpy as np
import pytest

from bugdet.augment import SourceMask, TargetFrame, build_objective
from bugdet.augment.realism import check_objectives, draw_pairs, resemblance
from bugdet.augment.texture_bugs import MAGENTA


def colour_layout(images) -> np.ndarray:
    """A plain, deterministic image embedding: a 4x4 grid of mean colours plus a coarse hue
    histogram. Enough to tell a magenta checker or a black frame from ordinary scenery."""
    out = []
    for im in images:
        small = np.asarray(im, np.float32)
        h, w = small.shape[:2]
        grid = [small[i * h // 4:(i + 1) * h // 4, j * w // 4:(j + 1) * w // 4].mean(axis=(0, 1))
                for i in range(4) for j in range(4)]
        magenta = ((small[..., 0] > 180) & (small[..., 2] > 180) & (small[..., 1] < 80)).mean()
        dark = (small.max(axis=2) < 20).mean()
        out.append(np.concatenate([np.ravel(grid) / 255.0, [4 * magenta, 4 * dark]]))
    return np.asarray(out, np.float32) - 0.5


@pytest.fixture(scope="module")
def world():
    """Good frames, targets and sources of a real playtest session; "real" missing-texture bug
    frames made the way an engine shows them (a surface replaced by the magenta checker)."""
    from bugdet.playtest.session import PlaytestSession, PlaytestSpec
    from bugdet.segment.engine import engine_candidates

    spec = PlaytestSpec(scene="indoor", seed=11, frames=40, width=160, height=120, prevalence=0.0, bugs=("fppc",))
    frames = list(PlaytestSession(spec).frames())
    targets = [TargetFrame(f.rgb, f.weapon_mask, f.index) for f in frames[:20]]
    sources = []
    for f in frames[::5]:
        for c in engine_candidates(f.ids, None, min_area=80):
            ys, xs = np.nonzero(c.mask)
            box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
            sources.append(SourceMask(f.rgb[box].copy(), c.mask[box].copy()))
    goods = [f.rgb for f in frames[20:32]]
    bugs = []
    for f in frames[32:]:
        rgb = f.rgb.copy()
        yy, xx = np.mgrid[0:40, 0:60]
        checker = ((yy // 8 + xx // 8) % 2 == 0)[..., None] * MAGENTA
        rgb[30:70, 40:100] = checker.astype(np.uint8)
        bugs.append(rgb)
    return targets, sources, goods, bugs


def test_a_simulation_that_looks_like_the_real_bug_resembles_it(world) -> None:
    targets, sources, goods, bugs = world
    found = check_objectives([build_objective("missing_texture")], targets, sources, {"missing_texture": bugs}, goods,
                             colour_layout, pairs=12)
    assert len(found) == 1 and found[0].resembles and found[0].shift > 0
    assert found[0].positives_nearer_a_real_bug > found[0].negatives_nearer_a_real_bug


def test_a_simulation_of_another_bug_does_not_resemble_them(world) -> None:
    """A surface filling the view (simulated camera clipping), judged against labeled
    magenta-checker bugs: nothing in it moves frames towards them, and the check says so."""
    targets, sources, goods, bugs = world
    found = check_objectives([build_objective("camera_clipping")], targets, sources, {"camera_clipping": bugs}, goods,
                             colour_layout, pairs=12)
    assert len(found) == 1 and not found[0].resembles
    assert "does NOT resemble" in found[0].describe()


def test_types_without_labeled_bugs_are_not_checked_and_draws_are_seeded(world) -> None:
    targets, sources, goods, bugs = world
    objective = build_objective("missing_texture")
    assert check_objectives([objective], targets, sources, {"missing_texture": []}, goods, colour_layout) == []
    a, _ = draw_pairs(objective, targets, sources, 4, seed=3)
    b, _ = draw_pairs(objective, targets, sources, 4, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="at least one labeled real bug"):
        resemblance("missing_texture", a, a, [], goods, colour_layout)


def test_an_embedding_that_cannot_see_the_real_bug_gives_no_verdict(world) -> None:
    """"Bug" frames that are the good frames themselves, a grey level brighter: nothing separates
    them from the good ones, so the check says it cannot tell instead of judging the simulation."""
    targets, sources, goods, _ = world
    lookalikes = [np.clip(g.astype(np.int16) + 1, 0, 255).astype(np.uint8) for g in goods[:8]]
    (found,) = check_objectives([build_objective("missing_texture")], targets, sources, {"missing_texture": lookalikes},
                                goods, colour_layout, pairs=8)
    assert found.verdict == "cannot tell" and not found.resembles and "cannot tell" in found.describe()
