"""Connect to Ray and stream work items through a pool of model-holding actors.

The stages hand :func:`map_on_actors` a list of picklable work items (frames to segment, chunks of
masks to embed) and a callable class that builds its model once in ``__init__``. Ray Data runs the
items through a fixed pool of those actors and the driver consumes the results as they finish, in
input order, so:

* the model is loaded once per actor, not once per item;
* results are streamed (a 100k-frame run never holds every mask in driver memory);
* the driver stays the only process that writes the project database.

Work items and results cross process (and machine) boundaries as pickled bytes in one binary
column: the project's own dataclasses (frame rows, mask records) then travel unchanged and Ray
never has to infer an Arrow schema for them.
"""

from __future__ import annotations

import os
import pickle
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from bugdet.errors import BugdetError
from bugdet.scale.config import ScaleConfig

PAYLOAD = "payload"


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (the Data library is a separate extra)
    except ImportError:
        raise BugdetError("scale.backend ray needs Ray Data: pip install 'ray[data]'") from None
    return ray


def ensure_ray(cfg: ScaleConfig) -> Any:
    """The ``ray`` module, connected: an already initialised session is reused as is (a test's
    ``ray.init(num_cpus=2)``, a nightly job's cluster), else ``cfg.ray_address`` is joined (None
    starts a local cluster with this machine's cores). The session stays up for later stages and
    ends with the process."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    try:
        ray.init(address=cfg.ray_address, include_dashboard=False, log_to_driver=True,
                 configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = cfg.ray_address or "a local cluster"
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BugdetError(f"cannot start or reach Ray at {where} (scale.ray_address): {first_line[:300]}") from None
    return ray


def gpus_per_actor(ray: Any, cfg: ScaleConfig, model_uses_gpu: bool) -> float:
    """The configured GPU share, else one GPU per actor when the cluster has any and the model can use it."""
    if cfg.gpus_per_actor is not None:
        return cfg.gpus_per_actor
    return 1.0 if model_uses_gpu and ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def _quiet_ordered_context(ray: Any) -> None:
    """Results in input order (mask ids then come out as in-process) and no Ray progress bars
    (the stage reports progress itself)."""
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False


def map_on_actors(cfg: ScaleConfig, items: Iterable[Any], actor_class: type, constructor_kwargs: dict[str, Any],
                  *, model_uses_gpu: bool, items_per_call: int = 1) -> Iterator[Any]:
    """Run ``actor_class(**constructor_kwargs)(batch)`` over ``items`` on ``cfg.num_actors`` Ray actors.

    The actor receives ``{"payload": array of pickled items}`` and returns ``{"payload": array of
    pickled results}``, one result per item; this yields the unpickled results in item order.
    """
    ray = ensure_ray(cfg)
    _quiet_ordered_context(ray)
    rows = [{PAYLOAD: pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)} for item in items]
    if not rows:
        return
    dataset = ray.data.from_items(rows, override_num_blocks=min(len(rows), max(1, cfg.num_actors * 4)))
    results = dataset.map_batches(
        actor_class,
        fn_constructor_kwargs={**constructor_kwargs, "driver_cwd": os.getcwd()},
        batch_size=items_per_call,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(cfg.num_actors, len(rows))),
        num_cpus=cfg.cpus_per_actor,
        num_gpus=gpus_per_actor(ray, cfg, model_uses_gpu),
    )
    for batch in results.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
        for payload in batch[PAYLOAD]:
            result = pickle.loads(payload)
            if isinstance(result, RaisedOnActor):
                raise result.error
            yield result


@dataclass
class RaisedOnActor:
    """A user error (bad input, bad config) an actor raised, sent back as a result: Ray Data would
    wrap it in its own exception with a remote traceback, and the CLI must print its one line."""

    error: BugdetError


class PayloadActor(ABC):
    """Base of the stages' actor classes: unpickles items, calls :meth:`process` per item, pickles results.

    ``build`` makes the actor's model (``self.model``) once. ``driver_cwd``: relative project paths
    resolve on a local cluster as they do on the driver (the actor moves there when that directory
    exists on its node). A user error while building (weights missing on this node) is kept and
    returned for every item, so it reaches the driver as the error it is.
    """

    def __init__(self, build: Callable[[], Any], driver_cwd: str | None = None, threads: int = 1) -> None:
        if driver_cwd and os.path.isdir(driver_cwd):
            os.chdir(driver_cwd)
        limit_threads(threads)
        self.startup_error: BugdetError | None = None
        try:
            self.model = build()
        except BugdetError as exc:
            self.startup_error = exc

    def _process_or_error(self, item: Any) -> Any:
        if self.startup_error is not None:
            return RaisedOnActor(self.startup_error)
        try:
            return self.process(item)
        except BugdetError as exc:
            return RaisedOnActor(exc)

    @abstractmethod
    def process(self, item: Any) -> Any:
        """One work item -> one picklable result."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = [pickle.dumps(self._process_or_error(pickle.loads(p)), protocol=pickle.HIGHEST_PROTOCOL)
               for p in batch[PAYLOAD]]
        result = np.empty(len(out), dtype=object)
        result[:] = out
        return {PAYLOAD: result}


def limit_threads(threads: int) -> None:
    """Keep an actor's OpenCV and torch thread pools to its CPU share (several actors share a node;
    Ray's ``OMP_NUM_THREADS`` covers libraries that read it when they load)."""
    import cv2

    threads = max(1, int(threads))
    cv2.setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
