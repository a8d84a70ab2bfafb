"""Per-model inference statistics, as Triton reports them (ModelStatistics, ``/v2/models/.../stats``).

Every KServe v2 inference request (gRPC unary, gRPC stream, HTTP) is timed by a
:class:`RequestTimer` through four points: received, handed to the batcher, answered by the model,
response built. Success and failure counts carry the whole request's duration; for successful
requests the time is split into Triton's phases:

* ``compute_input``: request tensors -> the model's input array (validation, copies),
* ``queue``: handed to the batcher -> the model run that served it started,
* ``compute_infer``: that model run (the whole dynamic batch's run, as in Triton),
* ``compute_output``: the run ended -> the response was built (delivery and serialisation).

The batcher is shared with bugdet.v1 and knows nothing about protocols, so it is not asked which
run served a request. Instead every :class:`LoadedModel` logs its runs (:class:`ExecutionLog`)
and a request picks the latest run that started after it was submitted and ended before its
answer arrived. Runs of one model never overlap (one batch at a time), so that is the run that
served it unless a later batch finished before this request's answer was delivered, which
misattributes a fraction of a millisecond between queue and infer, never the total.
``execution_count`` counts distinct runs that served KServe requests; bugdet.v1 requests are
not counted here (the Prometheus metrics cover both protocols).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.runtime import LoadedModel


@dataclass(frozen=True)
class Execution:
    """One model run: a whole (dynamic) batch."""

    seq: int
    start_ns: int
    end_ns: int
    frames: int


class ExecutionLog:
    """The recent runs of one loaded model, so that a request can find the run that served it."""

    def __init__(self, keep: int = 1024):
        self._runs: deque[Execution] = deque(maxlen=keep)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def record(self, start_ns: int, end_ns: int, frames: int) -> None:
        with self._lock:
            self._runs.append(Execution(next(self._seq), start_ns, end_ns, frames))

    def serving(self, submitted_ns: int, answered_ns: int) -> Execution | None:
        """The latest run inside [submitted, answered], or None if the log no longer holds it."""
        with self._lock:
            for run in reversed(self._runs):
                if run.start_ns < submitted_ns:
                    return None
                if run.end_ns <= answered_ns:
                    return run
        return None


@dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += max(0, ns)


@dataclass
class ModelStats:
    """Cumulative statistics of one model version."""

    name: str
    version: str
    last_inference_ms: int = 0
    inference_count: int = 0
    execution_count: int = 0
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    batches: dict[int, Duration] = field(default_factory=dict)  # batch size -> compute_infer of its runs

    def as_dict(self) -> dict:
        """Triton's JSON form (HTTP ``/stats``; the gRPC message has the same fields)."""
        def duration(d: Duration) -> dict:
            return {"count": d.count, "ns": d.ns}

        return {
            "name": self.name, "version": self.version, "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count, "execution_count": self.execution_count,
            "inference_stats": {phase: duration(getattr(self, phase)) for phase in PHASES},
            "batch_stats": [{"batch_size": size, "compute_infer": duration(d)} for size, d in sorted(self.batches.items())],
        }


PHASES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


class InferenceStatistics:
    """All models' statistics; thread-safe, updated once per finished request."""

    def __init__(self, remember_runs: int = 4096):
        self._models: dict[tuple[str, str], ModelStats] = {}
        self._lock = threading.Lock()
        self._counted: deque[tuple[int, int]] = deque(maxlen=remember_runs)  # (log id, run seq) already counted
        self._counted_set: set[tuple[int, int]] = set()

    def start(self, model: LoadedModel) -> RequestTimer:
        return RequestTimer(self, model)

    def snapshot(self, name: str = "", version: str = "") -> list[ModelStats]:
        """Copies of the matching models' statistics, sorted by name and version."""
        with self._lock:
            rows = [s for (n, v), s in self._models.items() if (not name or n == name) and (not version or v == version)]
            return [_copy(s) for s in sorted(rows, key=lambda s: (s.name, s.version))]

    def ensure(self, model: LoadedModel) -> None:
        """List a served model even before its first request (Triton reports zeros)."""
        with self._lock:
            self._models.setdefault((model.name, model.version), ModelStats(model.name, model.version))

    def _record(self, timer: RequestTimer, ok: bool, frames: int, finished_ns: int) -> None:
        model = timer.model
        run = None
        if ok and timer.submitted_ns is not None and timer.answered_ns is not None:
            run = model.executions.serving(timer.submitted_ns, timer.answered_ns)
        with self._lock:
            stats = self._models.setdefault((model.name, model.version), ModelStats(model.name, model.version))
            if not ok:
                stats.fail.add(finished_ns - timer.started_ns)
                return
            stats.success.add(finished_ns - timer.started_ns)
            stats.inference_count += frames
            stats.last_inference_ms = int(time.time() * 1000)
            submitted = timer.submitted_ns if timer.submitted_ns is not None else timer.started_ns
            answered = timer.answered_ns if timer.answered_ns is not None else finished_ns
            stats.compute_input.add(submitted - timer.started_ns)
            if run is None:  # served inline long ago or the log rolled over: no split known
                stats.queue.add(0)
                stats.compute_infer.add(answered - submitted)
                stats.compute_output.add(finished_ns - answered)
                return
            stats.queue.add(run.start_ns - submitted)
            stats.compute_infer.add(run.end_ns - run.start_ns)
            stats.compute_output.add(finished_ns - run.end_ns)
            key = (id(model.executions), run.seq)
            if key not in self._counted_set:
                if len(self._counted) == self._counted.maxlen:
                    self._counted_set.discard(self._counted[0])
                self._counted.append(key)
                self._counted_set.add(key)
                stats.execution_count += 1
                stats.batches.setdefault(run.frames, Duration()).add(run.end_ns - run.start_ns)


class RequestTimer:
    """The timestamps of one inference request; :meth:`finish` records it exactly once."""

    def __init__(self, statistics: InferenceStatistics, model: LoadedModel):
        self.statistics, self.model = statistics, model
        self.started_ns = time.perf_counter_ns()
        self.submitted_ns: int | None = None
        self.answered_ns: int | None = None
        self._finished = False

    def submitted(self) -> None:
        """The model input is ready and goes to the batcher."""
        self.submitted_ns = time.perf_counter_ns()

    def answered(self) -> None:
        """The model output for this request is back (the first call counts: a stream marks it
        when the batch resolves the future, before its answer waits its turn to be written)."""
        if self.answered_ns is None:
            self.answered_ns = time.perf_counter_ns()

    def finish(self, ok: bool, frames: int = 0) -> None:
        if self._finished:
            return
        self._finished = True
        self.statistics._record(self, ok, frames, time.perf_counter_ns())


def _copy(stats: ModelStats) -> ModelStats:
    copy = ModelStats(stats.name, stats.version, stats.last_inference_ms, stats.inference_count, stats.execution_count)
    for phase in PHASES:
        source = getattr(stats, phase)
        setattr(copy, phase, Duration(source.count, source.ns))
    copy.batches = {size: Duration(d.count, d.ns) for size, d in stats.batches.items()}
    return copy
