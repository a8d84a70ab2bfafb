"""``python -m service --models DIR --port P``: the service without the bugdet CLI (inference hosts
need only onnxruntime, numpy, OpenCV and grpc). ``bugdet serve`` takes the same options."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from service.config import ServerConfig, TlsConfig
from service.server import run_forever


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument("--metrics-port", type=int)
    parser.add_argument("--http-port", type=int, help="also serve KServe v2 over HTTP/REST on this port (0 = any free one)")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-queue-delay-ms", type=float, default=0.0)
    parser.add_argument("--max-queue", type=int, default=256)
    parser.add_argument("--max-message-mb", type=int, default=64)
    parser.add_argument("--max-pixels", type=int, default=ServerConfig.max_pixels,
                        help="largest frame, in pixels declared by its header or raw fields (checked before decoding)")
    parser.add_argument("--max-request-pixels", type=int, default=ServerConfig.max_request_pixels,
                        help="pixel budget of all frames in one request")
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--intra-op-threads", type=int, default=0, help="onnxruntime threads per inference (0 = all cores)")
    parser.add_argument("--token", default=os.environ.get("BUGDET_SERVE_TOKEN"))
    parser.add_argument("--tls-cert", type=Path)
    parser.add_argument("--tls-key", type=Path)
    parser.add_argument("--tls-client-ca", type=Path)
    parser.add_argument("--poll-s", type=float, default=2.0)
    parser.add_argument("--idle-release-s", type=float, default=ServerConfig.idle_release_s,
                        help="return freed memory to the kernel after this many idle seconds (0 = never)")
    parser.add_argument("--flag-window", type=int, default=ServerConfig.flag_window, metavar="N",
                        help="DetectStream: flag a bug type when --flag-window-min of the last N frames of a session were "
                             "over its threshold (1 = off, each frame on its own; on, a bug is flagged up to N-1 frames later)")
    parser.add_argument("--flag-window-min", type=int, default=ServerConfig.flag_window_min, metavar="K",
                        help="frames of the --flag-window that must be over the threshold (1..N)")
    args = parser.parse_args(argv)
    if not 1 <= args.flag_window_min <= args.flag_window:
        parser.error(f"need 1 <= --flag-window-min <= --flag-window (got {args.flag_window_min} and {args.flag_window})")
    tls = TlsConfig(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert and args.tls_key else None
    config = ServerConfig(
        models_dir=args.models, host=args.host, port=args.port, metrics_port=args.metrics_port, http_port=args.http_port, max_batch=args.max_batch,
        max_queue_delay_ms=args.max_queue_delay_ms, max_queue=args.max_queue, max_message_bytes=args.max_message_mb << 20,
        workers=args.workers, device=args.device, intra_op_threads=args.intra_op_threads, token=args.token, tls=tls, poll_s=args.poll_s,
        max_pixels=args.max_pixels, max_request_pixels=args.max_request_pixels, idle_release_s=args.idle_release_s,
        flag_window=args.flag_window, flag_window_min=args.flag_window_min,
    )
    try:
        run_forever(config, announce=lambda line: print(line, flush=True))
    except (FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
