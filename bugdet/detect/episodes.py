"""Event-level detection metrics: bug episodes found, false alarms raised.

A bug lasts several frames, and a QA lead reads *events*, not frames: one flag anywhere in a
five-frame glitch is a found bug, and a burst of flags on one stretch of clean play is one
wasted look, not ten. Frame-level F1 counts neither that way, so these metrics regroup frames
into events on each capture's own timeline.

Definitions (every function here uses them, and nothing else in bugdet defines episodes):

- **Timeline**: frames are ordered by (capture, position within the capture). Frames of
  different captures are never adjacent. Two frames are adjacent when no *evaluated* frame of
  the same capture lies between them: a frame the ingest skipped (stride, near-duplicate,
  content dedupe) is unknown, so it neither joins nor splits anything.
- **Episode**: a maximal run of adjacent bug frames. One good frame in between ends it.
- **Alarm event**: a maximal run of adjacent flagged frames (``score >= threshold``), whatever
  their labels. It is a **false alarm** when none of its frames is a bug frame. Counting alarm
  events, not flagged good frames, is what the reader pays for: ten flags in a row on clean
  play are one thing to dismiss. And an alarm that overlaps an episode points at a real bug even
  where it runs a frame or two past the labelled end (the detector's afterglow, or a bug that
  fades out), so it is no false alarm; counting its good frames would charge a detector that is
  perfect at the event level with one false alarm per episode.
- **Episode recall**: the share of episodes with at least one frame scoring ``>= threshold``.

Rates are per 1,000 *evaluated* frames (bug and good frames together), the unit a stream of
play is measured in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: The false-alarm budget of the headline operating point: alarms per 1,000 evaluated frames.
FALSE_ALARM_BUDGET_PER_1K = 1.0


@dataclass(frozen=True)
class Timeline:
    """Frames sorted by (capture, position), with where each capture starts.

    ``order`` maps timeline positions to the caller's frame indices; ``joins_previous[p]`` says
    whether timeline position ``p`` is adjacent to ``p - 1`` (same capture).
    """

    order: np.ndarray  # [n] int: caller's index at each timeline position
    joins_previous: np.ndarray  # [n] bool

    @classmethod
    def build(cls, captures: np.ndarray, positions: np.ndarray) -> Timeline:
        captures = np.asarray(captures).ravel()
        positions = np.asarray(positions).ravel()
        if captures.shape != positions.shape:
            raise ValueError(f"captures {captures.shape} and positions {positions.shape} differ in length")
        order = np.lexsort((positions, captures))
        c, p = captures[order], positions[order]
        same_capture = np.zeros(c.size, bool)
        same_capture[1:] = c[1:] == c[:-1]
        repeated = same_capture.copy()
        repeated[1:] &= p[1:] == p[:-1]
        if repeated.any():
            j = int(np.flatnonzero(repeated)[0])
            raise ValueError(f"frames {int(order[j - 1])} and {int(order[j])} share capture {c[j].item()!r} position {p[j].item()!r}: "
                             "their order in time is unknown")
        return cls(order=order, joins_previous=same_capture)

    def __len__(self) -> int:
        return int(self.order.size)

    def runs(self, mask: np.ndarray) -> np.ndarray:
        """Run number (0, 1, ...) of each frame in a maximal run of adjacent ``mask`` frames, -1
        elsewhere; indexed like the caller's frames."""
        m = np.asarray(mask, bool).ravel()[self.order]
        previous = np.zeros_like(m)
        previous[1:] = m[:-1]
        starts = m & ~(self.joins_previous & previous)
        run_at = np.where(m, np.cumsum(starts) - 1, -1)
        out = np.empty_like(run_at)
        out[self.order] = run_at
        return out


def _checked(scores: np.ndarray, labels: np.ndarray, timeline: Timeline) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    if not (scores.shape == labels.shape == timeline.order.shape):
        raise ValueError(f"scores {scores.shape}, labels {labels.shape} and timeline ({len(timeline)},) differ in length")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinity")
    return scores, labels


def episode_ids(labels: np.ndarray, timeline: Timeline) -> np.ndarray:
    """Episode number of each bug frame (0, 1, ...), -1 for good frames."""
    labels = np.asarray(labels).astype(bool).ravel()
    if labels.shape != timeline.order.shape:
        raise ValueError(f"labels {labels.shape} and timeline ({len(timeline)},) differ in length")
    return timeline.runs(labels)


def count_episodes(labels: np.ndarray, timeline: Timeline) -> int:
    ids = episode_ids(labels, timeline)
    return int(ids.max()) + 1 if ids.size else 0


def episode_recall(scores: np.ndarray, labels: np.ndarray, timeline: Timeline, threshold: float) -> float:
    """Share of episodes with a frame scoring ``>= threshold``; NaN when there are no episodes."""
    scores, labels = _checked(scores, labels, timeline)
    ids = episode_ids(labels, timeline)
    n = int(ids.max()) + 1 if ids.size else 0
    if n == 0:
        return float("nan")
    found = np.zeros(n, bool)
    found[ids[labels & (scores >= threshold)]] = True
    return float(found.mean())


def false_alarms(scores: np.ndarray, labels: np.ndarray, timeline: Timeline, threshold: float) -> int:
    """Alarm events at ``threshold`` that hold no bug frame."""
    scores, labels = _checked(scores, labels, timeline)
    runs = timeline.runs(scores >= threshold)
    total = int(runs.max()) + 1 if runs.size else 0
    hit = np.unique(runs[labels & (runs >= 0)])
    return total - int(hit.size)


def per_1k(count: float, frames: int) -> float:
    return 1000.0 * count / frames if frames else float("nan")


def threshold_for_false_alarms(scores: np.ndarray, labels: np.ndarray, timeline: Timeline,
                               budget_per_1k: float = FALSE_ALARM_BUDGET_PER_1K) -> float:
    """The loosest threshold reached by lowering it from above the highest score, one distinct
    score at a time (ties flip together), before the false alarms first exceed
    ``budget_per_1k`` per 1,000 frames.

    Why "first": alarm events merge as the threshold drops, so their count is not monotone: at
    the lowest score every capture is one long alarm, often overlapping a bug and so no false
    alarm at all. The loosest threshold that merely *satisfies* the budget would often be "flag
    everything"; an operator tuning down from strict stops at the first threshold that is too
    noisy, and so does this. Where even the highest score breaks the budget, the threshold lies
    just above it (nothing flagged). NaN for no frames.

    Frames are flagged one tie group at a time, with runs merged by union-find, so the whole
    sweep is linear after one sort (~10 ms for 6,000 frames swept to the bottom).
    """
    scores, labels = _checked(scores, labels, timeline)
    n = scores.size
    if n == 0:
        return float("nan")
    allowed = budget_per_1k * n / 1000.0
    s, y = scores[timeline.order], labels[timeline.order]  # timeline positions from here on
    joins_prev = timeline.joins_previous
    joins_next = np.zeros_like(joins_prev)
    joins_next[:-1] = joins_prev[1:]
    parent = np.arange(n)
    has_bug = y.copy()
    flagged = np.zeros(n, bool)

    def root(p: int) -> int:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = int(parent[p])
        return p

    false_runs = 0
    best = float(np.nextafter(s.max(), np.inf))
    by_score = np.argsort(-s, kind="mergesort")
    group_ends = np.r_[np.flatnonzero(np.diff(s[by_score]) != 0), n - 1]
    start = 0
    for end in group_ends:
        for p in by_score[start:end + 1].tolist():
            flagged[p] = True
            false_runs += not has_bug[p]
            for q, adjacent in ((p - 1, joins_prev[p]), (p + 1, joins_next[p])):
                if adjacent and flagged[q]:
                    a, b = root(p), root(q)
                    if a != b:
                        merged = has_bug[a] or has_bug[b]
                        false_runs += (not merged) - (not has_bug[a]) - (not has_bug[b])
                        parent[b], has_bug[a] = a, merged
        if false_runs > allowed:
            break
        best = float(s[by_score[end]])
        start = end + 1
    return best


@dataclass
class EpisodeMetrics:
    """Event-level view of one score column: at the calibrated threshold, and at the false-alarm
    budget's own threshold."""

    episodes: int
    frames: int
    episode_recall: float  # at the calibrated threshold
    false_alarms: int  # at the calibrated threshold
    false_alarms_per_1k: float
    episode_recall_at_budget: float  # at <= budget_per_1k false alarms per 1,000 frames
    threshold_at_budget: float
    budget_per_1k: float

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_episodes(scores: np.ndarray, labels: np.ndarray, timeline: Timeline, threshold: float,
                      budget_per_1k: float = FALSE_ALARM_BUDGET_PER_1K) -> EpisodeMetrics:
    scores, labels = _checked(scores, labels, timeline)
    alarms = false_alarms(scores, labels, timeline, threshold)
    at_budget = threshold_for_false_alarms(scores, labels, timeline, budget_per_1k)
    return EpisodeMetrics(
        episodes=count_episodes(labels, timeline),
        frames=int(scores.size),
        episode_recall=episode_recall(scores, labels, timeline, threshold),
        false_alarms=alarms,
        false_alarms_per_1k=per_1k(alarms, scores.size),
        episode_recall_at_budget=episode_recall(scores, labels, timeline, at_budget) if scores.size else float("nan"),
        threshold_at_budget=at_budget,
        budget_per_1k=float(budget_per_1k),
    )


def windowed_scores(scores: np.ndarray, timeline: Timeline, frames: int, min_hits: int) -> np.ndarray:
    """Scores under the "``min_hits`` of the last ``frames`` frames" rule (the service's temporal
    window, service/temporal.py), as one score per frame: the ``min_hits``-th highest score among
    the frame and the ``frames - 1`` before it in its capture. A frame is over a threshold here
    exactly when the window would flag it at that threshold, so every threshold-free metric
    (PR-AUC, episode recall at a false-alarm budget) can be measured for the window without
    choosing a threshold first. Frames with fewer than ``min_hits`` predecessors in their capture
    score 0 (the window cannot flag them yet). Returned in the caller's order."""
    if not 1 <= min_hits <= frames:
        raise ValueError(f"min_hits must be within 1..frames, got {min_hits} of {frames}")
    scores = np.asarray(scores, np.float64).ravel()
    if scores.size != timeline.order.size:
        raise ValueError(f"{scores.size} scores for a timeline of {timeline.order.size} frames")
    ordered = scores[timeline.order]
    n = ordered.size
    starts = np.maximum.accumulate(np.where(~timeline.joins_previous, np.arange(n), 0)) if n else np.zeros(0, int)
    lagged = np.full((n, frames), -np.inf)
    for lag in range(frames):
        rows = np.arange(lag, n)
        valid = rows - lag >= starts[rows]
        lagged[rows[valid], lag] = ordered[rows[valid] - lag]
    kth = np.sort(lagged, axis=1)[:, frames - min_hits] if n else np.zeros(0)
    out = np.empty(n)
    out[timeline.order] = np.where(np.isfinite(kth), kth, 0.0)
    return out
