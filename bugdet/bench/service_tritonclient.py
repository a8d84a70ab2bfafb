"""The KServe v2 side of ``bugdet bench service``: the unmodified Triton client, gRPC and HTTP.

An engine (or a tool) that speaks the Open Inference Protocol sends the model's input tensor, so
the client does the conversion the service otherwise does: from the same raw RGBA readback,
:func:`service.frames.decode_raw` + :func:`service.frames.fit_to_input` on the client side, then
one ``infer`` per frame (UINT8 [1, H, W, 3]; binary tensors over HTTP), then
:func:`service.requests.verdicts` on the returned scores and heatmaps: the same work per frame as
the in-process plugin. ``threads`` clients (each its own connection) run at once, so the service's
dynamic batcher forms batches from concurrent callers, which is how several engines or test
machines share one service.

tritonclient is a dev dependency; without it the report says so instead of failing the benchmark.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np


def available() -> str | None:
    """None when tritonclient's gRPC and HTTP clients can be used in this process, else why not.

    tritonclient.grpc registers the ``inference.*`` messages in protobuf's default pool, as the
    service does when it runs in the same process (tests), and the two cannot coexist: then the
    tritonclient rounds are skipped rather than breaking either side."""
    import sys

    from google.protobuf import descriptor_pool

    if "tritonclient.grpc" not in sys.modules:
        try:
            descriptor_pool.Default().FindMessageTypeByName("inference.ServerLiveRequest")
            return "the service's KServe protos are loaded in this process, which tritonclient.grpc's would clash with"
        except KeyError:
            pass
    try:
        import tritonclient.grpc  # noqa: F401
        import tritonclient.http  # noqa: F401
    except ImportError as exc:
        return f"tritonclient is not installed ({exc}); pip install 'tritonclient[http]'"
    return None


def _client(protocol: str, url: str):
    if protocol == "grpc":
        import tritonclient.grpc as triton
    else:
        import tritonclient.http as triton
    return triton, triton.InferenceServerClient(url=url)


def run_clients(protocol: str, url: str, model: str, engine: list[tuple[bytes, int, int]], prepare: Callable[..., np.ndarray],
                decide: Callable[[np.ndarray, np.ndarray], Any], frames: int, threads: int = 8) -> dict[str, float]:
    """``frames`` frames split over ``threads`` client threads; frames/s over the whole wall time,
    the client process's CPU per frame (conversion + client library + decision) and the number of
    requests sent (one warm-up per thread, untimed, besides the frames)."""
    share = [frames // threads + (1 if t < frames % threads else 0) for t in range(threads)]
    start = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            triton, client = _client(protocol, url)
            outputs = [triton.InferRequestedOutput(name, **({"binary_data": True} if protocol == "http" else {}))
                       for name in ("scores", "heatmaps")]

            def one(i: int) -> None:
                pixels = prepare(*engine[i % len(engine)])[None]
                tensor = triton.InferInput("images", list(pixels.shape), "UINT8")
                tensor.set_data_from_numpy(pixels)
                result = client.infer(model, [tensor], outputs=outputs)
                decide(result.as_numpy("scores")[0], result.as_numpy("heatmaps")[0])

            one(index)  # connect and warm up outside the timed region
            start.wait()
            for k in range(share[index]):
                one(index + k * threads)
            client.close()
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)
            start.abort()

    workers = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    cpu0, began = time.process_time(), time.perf_counter()
    for w in workers:
        w.join()
    wall = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"tritonclient {protocol} clients failed: {errors[0]!r}") from errors[0]
    return {"fps": frames / wall, "client_cpu_ms_per_frame": (time.process_time() - cpu0) * 1000 / frames,
            "requests": frames + threads}


def scores_agree(protocol: str, url: str, model: str, pixels: np.ndarray, expected: np.ndarray) -> float:
    """Largest |score difference| between the service (through tritonclient) and in-process."""
    triton, client = _client(protocol, url)
    tensor = triton.InferInput("images", list(pixels.shape), "UINT8")
    tensor.set_data_from_numpy(pixels)
    got = client.infer(model, [tensor]).as_numpy("scores")
    client.close()
    return float(np.abs(got - expected).max())
