"""Dynamic batching across concurrent requests.

Handler threads :meth:`DynamicBatcher.submit` frames and wait on a future; one worker thread forms
batches and runs the model. A batch takes what is queued for the same model, up to ``max_batch``
frames; with ``max_queue_delay_ms`` > 0 a partial batch waits that long for more. The default
delay is 0: under load the queue refills while the model runs, so batches grow by themselves and
a lone request pays no delay at all (that is what keeps gRPC latency at batch 1 close to plain
onnxruntime).

When the batcher is idle (nothing queued, no batch running) and no batching window is configured,
:meth:`run` executes the caller's frames on the caller's own thread: a lone request then costs no
thread hand-off at all. The ``_running`` lock makes that and the worker's batches mutually
exclusive, so the model never runs twice at once (which would only split the cores). The worker
hands each finished batch to a delivery thread that resolves the futures: between two batches the
worker only takes the next one from the queue (measured: its idle time between batches in a
stream fell from ~12% to ~8% of the stream's wall time on the loaded 2-core machine).

The queue is bounded in frames. A unary request that finds it full is refused at once
(:class:`QueueFull` -> RESOURCE_EXHAUSTED) instead of waiting unboundedly; a stream waits for
room, which is its flow control. Items whose deadline has passed are dropped before inference.
Each item carries the :class:`LoadedModel` it was prepared for, so a hot reload never mixes
frames resized for one package into a batch for another.

A caller whose deadline passes gives up on its future (``cancel``). The worker claims every
future with ``set_running_or_notify_cancel`` before inferring, so a future is either cancelled
before its batch starts (skipped) or can no longer be cancelled (its result is computed and
dropped by nobody); futures are only ever settled through :func:`_settle`, which tolerates one
that is already done. Both threads run under a supervisor: if one still dies, the failure is
logged with its traceback, the requests it held fail with :class:`WorkerFailed` (UNAVAILABLE,
retry) instead of hanging, ``on_health(False)`` turns health NOT_SERVING, and the thread is
restarted after ``restart_backoff_s`` (then ``on_health(True)``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

import numpy as np

from service.metrics import Metrics
from service.runtime import LoadedModel

log = logging.getLogger("bugdet.service")

WORKER, DELIVERER = "bugdet-batcher", "bugdet-deliver"


class QueueFull(RuntimeError):
    """The batching queue holds ``max_queue`` frames already."""


class DeadlineExceeded(TimeoutError):
    """The request's deadline passed before its work was done (queued, decoding or inferring)."""


class WorkerFailed(RuntimeError):
    """A batcher thread died while holding this request; it is being restarted, so retrying helps."""


def _settle(future: Future, result: object = None, error: BaseException | None = None) -> None:
    """Resolve ``future`` unless it is already done (cancelled by its caller, or failed by the
    supervisor): settling twice must never raise in a batcher thread."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass  # settled by someone else between the check and the set


@dataclass
class _Item:
    model: LoadedModel
    frames: np.ndarray  # uint8 [n, H, W, 3]
    deadline: float | None  # time.monotonic() seconds
    future: Future = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)


class DynamicBatcher:
    def __init__(self, max_batch: int = 8, max_queue: int = 256, max_queue_delay_ms: float = 0.0, metrics: Metrics | None = None,
                 on_health: Callable[[bool], None] | None = None, restart_backoff_s: float = 0.1):
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.max_delay = max_queue_delay_ms / 1000.0
        self.metrics = metrics or Metrics()
        self._queue: deque[_Item] = deque()
        self._queued_frames = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._running = threading.Lock()  # held while a batch (worker's or inline) is inferring
        # Finished batches are handed to a second thread that resolves their futures (and so runs
        # the streams' callbacks), so the worker goes straight back to the queue for the next batch.
        self._deliveries: queue.SimpleQueue = queue.SimpleQueue()
        self.on_health = on_health
        self.restart_backoff_s = restart_backoff_s
        self.restarts = 0
        self._down: set[str] = set()  # supervised threads that died and wait for their restart
        self._in_hand: dict[str, list[_Item]] = {}  # per thread: items taken off the queue, not yet settled
        self._stopped = threading.Event()
        self._deliverer = self._start(DELIVERER, self._deliver_loop)
        self._worker = self._start(WORKER, self._loop)

    @property
    def depth(self) -> int:
        return self._queued_frames

    @property
    def healthy(self) -> bool:
        """False while a batcher thread is down (between its death and its restart)."""
        return not self._down

    def submit(self, model: LoadedModel, frames: np.ndarray, deadline: float | None = None, wait_for_room: bool = False) -> Future:
        """Queue ``frames`` for ``model``; the future resolves to (scores [n,T], heatmaps [n,T,h,w])."""
        item = _Item(model, frames, deadline)
        n = len(frames)
        with self._cond:
            while self._queued_frames + n > self.max_queue and self._queued_frames > 0:
                if not wait_for_room:
                    raise QueueFull(f"server busy: {self._queued_frames} frames queued (max {self.max_queue}); retry later")
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    raise DeadlineExceeded("deadline passed while waiting for room in the queue")
                self._cond.wait(timeout)
            if self._stopping:
                raise QueueFull("server is shutting down")
            self._queue.append(item)
            self._queued_frames += n
            self.metrics.queue_depth.set(self._queued_frames)
            self._cond.notify_all()
        return item.future

    def run(self, model: LoadedModel, frames: np.ndarray, deadline: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Submit and wait for the result; inline on this thread when the batcher is idle."""
        if deadline is not None and deadline <= time.monotonic():
            raise DeadlineExceeded("deadline passed before inference")
        if self.max_delay == 0 and not self._queue and self._running.acquire(blocking=False):
            try:
                if not self._queue:  # nothing slipped in: this request is alone
                    self.metrics.inline_batches.inc()
                    self.metrics.stage_seconds.observe(0.0, stage="queue")
                    return self._infer(model, frames)
            finally:
                self._running.release()
                with self._cond:
                    if self._queue:
                        self._cond.notify_all()
        future = self.submit(model, frames, deadline)
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return future.result(timeout=timeout)
        except BaseException:
            future.cancel()  # fails harmlessly once the worker has claimed it; its result is then dropped
            raise

    def _infer(self, model: LoadedModel, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        started = time.perf_counter()
        scores, heatmaps = model.run(frames)
        self.metrics.inference_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(frames))
        return scores, heatmaps

    def stop(self) -> None:
        self._stopped.set()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._worker.join(timeout=5)
        self._deliveries.put(None)
        self._deliverer.join(timeout=5)

    def _take_batch(self) -> list[_Item]:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping and not self._queue:
                return []
            first = self._queue.popleft()
            batch, frames = [first], len(first.frames)
            wait_until = time.monotonic() + self.max_delay
            while frames < self.max_batch:
                if self._queue:
                    nxt = self._queue[0]
                    if nxt.model is not first.model or frames + len(nxt.frames) > self.max_batch:
                        break
                    batch.append(self._queue.popleft())
                    frames += len(nxt.frames)
                    continue
                remaining = wait_until - time.monotonic()
                if remaining <= 0 or self._stopping:
                    break
                self._cond.wait(remaining)
            self._queued_frames -= frames
            self.metrics.queue_depth.set(self._queued_frames)
            self._cond.notify_all()  # room for waiting streams
            return batch

    # -- supervised threads
    def _start(self, name: str, loop: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=self._supervise, args=(name, loop), name=name, daemon=True)
        thread.start()
        return thread

    def _supervise(self, name: str, loop: Callable[[], None]) -> None:
        """Run ``loop`` until it returns (stop); if it raises, fail what it held and restart it."""
        while True:
            try:
                loop()
                return
            except BaseException as exc:
                if self._stopping:
                    return
                self.restarts += 1
                self.metrics.thread_restarts.inc(thread=name)
                log.error("%s thread died (%s: %s); health NOT_SERVING until it restarts in %.2f s",
                          name, type(exc).__name__, exc, self.restart_backoff_s, exc_info=exc)
                self._set_down(name, True)
                held = self._in_hand.pop(name, [])
                failure = WorkerFailed(f"the server's {name} thread failed while handling this request and is being restarted; retry")
                for item in held:
                    _settle(item.future, error=failure)
                if self._stopped.wait(self.restart_backoff_s):
                    return
                log.warning("%s thread restarted", name)
                self._set_down(name, False)

    def _set_down(self, name: str, down: bool) -> None:
        with self._cond:
            (self._down.add if down else self._down.discard)(name)
            healthy = not self._down
        if self.on_health is not None:
            try:
                self.on_health(healthy)
            except Exception:
                log.exception("health callback failed")

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
            with self._running:
                batch = self._take_batch()
                if not batch:
                    return
                self._in_hand[WORKER] = batch
                self._run_batch(batch)
                self._in_hand.pop(WORKER, None)

    def _run_batch(self, batch: list[_Item]) -> None:
        now = time.monotonic()
        live = []
        for item in batch:
            # Claim the future: False means its caller already gave up (skip it); after True the
            # caller's cancel() can no longer succeed, so settling it later cannot race.
            if not item.future.set_running_or_notify_cancel():
                continue
            if item.deadline is not None and item.deadline <= now:
                _settle(item.future, error=DeadlineExceeded("deadline passed while queued"))
            else:
                self.metrics.stage_seconds.observe(now - item.queued_at, stage="queue")
                live.append(item)
        if not live:
            return
        model = live[0].model
        try:
            frames = live[0].frames if len(live) == 1 else np.concatenate([i.frames for i in live])
            outcome: tuple | BaseException = self._infer(model, frames)
        except Exception as exc:  # noqa: BLE001 - one failed batch must not kill the worker
            outcome = exc
        self._deliveries.put((live, outcome))

    def _deliver_loop(self) -> None:
        while (delivery := self._deliveries.get()) is not None:
            live, outcome = delivery
            self._in_hand[DELIVERER] = live
            self._deliver(live, outcome)
            self._in_hand.pop(DELIVERER, None)

    def _deliver(self, live: list[_Item], outcome: tuple | BaseException) -> None:
        """Settle one batch's futures (their done-callbacks, e.g. a stream's, run here)."""
        if isinstance(outcome, BaseException):
            for item in live:
                _settle(item.future, error=outcome)
            return
        scores, heatmaps = outcome
        start = 0
        for item in live:
            end = start + len(item.frames)
            _settle(item.future, (scores[start:end], heatmaps[start:end]))
            start = end
