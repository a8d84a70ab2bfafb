"""Event-level metrics on hand-built timelines whose answers are worked out in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bugdet.detect.episodes import (
    Timeline,
    count_episodes,
    episode_ids,
    episode_recall,
    evaluate_episodes,
    false_alarms,
    threshold_for_false_alarms,
)


def one_capture(n: int) -> Timeline:
    return Timeline.build(np.zeros(n, int), np.arange(n))


# One capture, positions 0..9. Episodes: {1, 2} and {6}.
LABELS = np.array([0, 1, 1, 0, 0, 0, 1, 0, 0, 0])
SCORES = np.array([.1, .9, .2, .8, .1, .7, .3, .1, .6, .6])


def test_episodes_are_runs_of_bug_frames_within_a_capture_in_time_order() -> None:
    # Given out of order, over two captures: capture 7 ends on a bug and capture 8 starts on one,
    # yet they are two episodes.
    captures = np.array([8, 7, 7, 8, 7, 8])
    positions = np.array([1, 0, 1, 0, 2, 2])
    labels = np.array([0, 0, 1, 1, 1, 1])  # capture 7: 0 1 1 -> one; capture 8: 1 0 1 -> two
    timeline = Timeline.build(captures, positions)
    assert count_episodes(labels, timeline) == 3
    ids = episode_ids(labels, timeline)
    assert ids[2] == ids[4] and ids[3] != ids[5] and ids[0] == ids[1] == -1
    assert count_episodes(LABELS, one_capture(10)) == 2
    assert count_episodes(np.zeros(10), one_capture(10)) == 0


def test_a_frame_the_ingest_skipped_neither_joins_nor_splits() -> None:
    # positions 0, 3, 9 of one capture: the evaluated frames in between are none, so one episode
    timeline = Timeline.build([1, 1, 1], [0, 3, 9])
    assert count_episodes([1, 1, 1], timeline) == 1
    assert count_episodes([1, 0, 1], timeline) == 2


def test_episode_recall_counts_an_episode_found_by_any_of_its_frames() -> None:
    timeline = one_capture(10)
    assert episode_recall(SCORES, LABELS, timeline, 0.5) == 0.5  # {1, 2} via .9; {6} peaks at .3
    assert episode_recall(SCORES, LABELS, timeline, 0.3) == 1.0  # >= : a score equal to t counts
    assert episode_recall(SCORES, LABELS, timeline, 0.95) == 0.0
    assert math.isnan(episode_recall(SCORES, np.zeros(10), timeline, 0.5))


def test_false_alarms_are_flagged_runs_without_a_bug_frame() -> None:
    timeline = one_capture(10)
    # t = .5 flags {1} (bug), {3}, {5}, {8, 9}: three false alarms, the last one two frames long
    assert false_alarms(SCORES, LABELS, timeline, 0.5) == 3
    # t = .15 flags {1, 2, 3} and {5, 6}, each holding a bug (3 and 5 are afterglow), and {8, 9}
    assert false_alarms(SCORES, LABELS, timeline, 0.15) == 1
    assert false_alarms(SCORES, LABELS, timeline, 0.0) == 0  # one alarm over everything, on a bug
    assert false_alarms(SCORES, LABELS, timeline, 0.95) == 0


def test_an_alarm_does_not_run_across_captures() -> None:
    # capture 1 ends on a flagged good frame, capture 2 starts on a flagged bug frame
    timeline = Timeline.build([1, 1, 2, 2], [0, 1, 0, 1])
    assert false_alarms([0.0, 0.9, 0.9, 0.0], [0, 0, 1, 0], timeline, 0.5) == 1
    assert false_alarms([0.0, 0.9, 0.9, 0.0], [0, 0, 1, 0], Timeline.build([1, 1, 1, 1], [0, 1, 2, 3]), 0.5) == 0


def test_budget_threshold_stops_at_the_first_too_noisy_score() -> None:
    # 10 frames at 100 per 1,000 allow one false alarm. Going down: .9 -> 0 false, .8 -> 1 ({3}),
    # .7 -> 2 ({3}, {5}): stop, the threshold is .8. Lower still, at .2, the alarms merge into
    # runs on the episodes and only {8, 9} is false: within budget, but never reached.
    timeline = one_capture(10)
    t = threshold_for_false_alarms(SCORES, LABELS, timeline, budget_per_1k=100)
    assert t == 0.8
    assert false_alarms(SCORES, LABELS, timeline, 0.2) == 1
    assert episode_recall(SCORES, LABELS, timeline, t) == 0.5


def test_tied_scores_flip_together_against_the_budget() -> None:
    labels = np.zeros(10)
    labels[1] = 1
    scores = np.zeros(10)
    scores[1], scores[3], scores[6] = 0.9, 0.5, 0.5  # two separate good frames tie at .5
    timeline = one_capture(10)
    # allowing one: flagging .5 raises two at once, so the threshold stays at .9
    assert threshold_for_false_alarms(scores, labels, timeline, budget_per_1k=100) == 0.9
    scores[6] = 0.4
    assert threshold_for_false_alarms(scores, labels, timeline, budget_per_1k=100) == 0.5


def test_budget_edge_cases() -> None:
    timeline = one_capture(10)
    # every frame a bug: no false alarm at any threshold, so everything is flagged
    assert threshold_for_false_alarms(SCORES, np.ones(10), timeline, budget_per_1k=0) == SCORES.min()
    # the top score is a good frame and no false alarm is allowed: nothing can be flagged
    t = threshold_for_false_alarms(1 - SCORES, LABELS, timeline, budget_per_1k=0)
    assert t > (1 - SCORES).max() and episode_recall(1 - SCORES, LABELS, timeline, t) == 0.0
    assert math.isnan(threshold_for_false_alarms([], [], Timeline.build([], [])))


def test_at_one_per_thousand_frames() -> None:
    # 2,000 frames allow two false alarms. Isolated good frames score .7, .6, .5; the four
    # episodes peak at .8, .65, .55, .3. Going down: .8 -> 0, .7 -> 1, .65 -> 1, .6 -> 2,
    # .55 -> 2, .5 -> 3: the threshold is .55 and three of four episodes are found.
    n = 2000
    labels, scores = np.zeros(n), np.zeros(n)
    for start, peak in ((100, .8), (600, .65), (1100, .55), (1600, .3)):
        labels[start:start + 4] = 1
        scores[start:start + 4] = [peak / 2, peak, peak / 2, peak / 3]
    for position, score in ((300, .7), (800, .6), (1300, .5)):
        scores[position] = score
    m = evaluate_episodes(scores, labels, one_capture(n), threshold=0.4)
    assert m.threshold_at_budget == 0.55 and m.episode_recall_at_budget == 0.75
    assert m.episodes == 4 and m.frames == n
    assert m.episode_recall == 0.75 and m.false_alarms == 3 and m.false_alarms_per_1k == 1.5


def test_all_good_frames_have_no_episode_recall_but_do_have_false_alarms() -> None:
    scores = np.array([0.2, 0.8, 0.1, 0.7, 0.3])
    m = evaluate_episodes(scores, np.zeros(5), one_capture(5), threshold=0.5)
    assert m.episodes == 0 and math.isnan(m.episode_recall) and math.isnan(m.episode_recall_at_budget)
    assert m.false_alarms == 2 and m.false_alarms_per_1k == 400.0
    assert m.threshold_at_budget > 0.8  # 5 frames allow no false alarm


def test_budget_sweep_matches_a_brute_force_scan() -> None:
    rng = np.random.default_rng(3)
    for trial in range(60):
        n = int(rng.integers(50, 300))
        captures = rng.integers(0, 4, n)
        positions = rng.permutation(n * 2)[:n]  # unique, with gaps
        timeline = Timeline.build(captures, positions)
        labels = np.zeros(n, bool)  # episodes of 1-6 frames along the timeline
        for start in rng.integers(0, n, n // 15):
            labels[timeline.order[start:start + int(rng.integers(1, 7))]] = True
        scores = np.round(rng.random(n) + labels * rng.random(n) * 0.8, 1)  # rounded: many ties
        budget = float(rng.choice([0.0, 10.0, 30.0, 100.0, 1000.0]))  # up to one false alarm per frame
        expected = float(np.nextafter(scores.max(), np.inf))
        for t in np.unique(scores)[::-1]:
            if false_alarms(scores, labels, timeline, t) > budget * n / 1000:
                break
            expected = float(t)
        assert threshold_for_false_alarms(scores, labels, timeline, budget) == expected, trial


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="share capture 1 position 4"):
        Timeline.build([1, 1, 2], [4, 4, 4])
    with pytest.raises(ValueError, match="differ in length"):
        Timeline.build([1, 1], [0])
    with pytest.raises(ValueError, match="differ in length"):
        episode_recall([0.1, 0.2], [0, 1, 0], one_capture(3), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        false_alarms([0.1, float("nan"), 0.2], [0, 1, 0], one_capture(3), 0.5)


@pytest.mark.parametrize("frames,min_hits", [(1, 1), (3, 2), (5, 3), (4, 4)])
def test_windowed_scores_flag_exactly_what_the_services_window_flags(frames: int, min_hits: int) -> None:
    """The offline score transform and the streaming rule (service/temporal.py) agree at every
    threshold, on captures given out of order."""
    from bugdet.detect.episodes import Timeline, windowed_scores
    from service.temporal import TemporalWindow

    rng = np.random.default_rng(frames * 10 + min_hits)
    captures = np.repeat(np.arange(4), [7, 1, 12, 9])
    positions = np.concatenate([np.arange(n) for n in (7, 1, 12, 9)])
    shuffle = rng.permutation(captures.size)
    captures, positions = captures[shuffle], positions[shuffle]
    scores = rng.random(captures.size)
    timeline = Timeline.build(captures, positions)
    windowed = windowed_scores(scores, timeline, frames, min_hits)
    in_time = scores[timeline.order]
    for threshold in (0.2, 0.5, 0.8):
        windows: dict[int, TemporalWindow] = {}
        flags = [windows.setdefault(int(c), TemporalWindow(frames, min_hits)).update({"bug": v >= threshold})["bug"]
                 for c, v in zip(captures[timeline.order], in_time)]
        assert np.array_equal(windowed[timeline.order] >= threshold, flags)
    with pytest.raises(ValueError):
        windowed_scores(scores, timeline, 2, 3)
