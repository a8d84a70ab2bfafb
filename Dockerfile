# The detection service image: `python -m service` over onnxruntime, serving the model packages
# that `bugdet export` writes. It holds no training code and no torch: packages are all it needs.
# That is why the entrypoint is `python -m service` and not `bugdet serve`: both start the same
# server with the same options (bugdet serve imports service.server.run_forever), but the bugdet
# CLI would pull in the training stack (torch, open_clip, ...) that an inference host does not need.
# The process runs as an unprivileged numeric user (10001) and reports health over gRPC Health.
#
#   docker build -t bugdet-service .                                  # CPU
#   docker build -t bugdet-service:cuda --build-arg BASE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 \
#       --build-arg ORT=onnxruntime-gpu .                              # CUDA (run with --gpus all)
#   docker run -p 50051:50051 -v $PWD/runs/demo/packages:/models:ro bugdet-service
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG ORT=onnxruntime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BUGDET_PROTOS_DIR=/app/protos

# The CUDA base images ship no pip; the slim Python image has everything this needs.
# DL3008 (pin apt versions) is ignored on purpose: these packages come from the CUDA base image's own
# distribution, whose tag (the BASE build argument) is what pins them; exact apt versions here would
# break the build whenever that tag moves to a newer distribution point release.
# hadolint ignore=DL3008
RUN if ! command -v pip3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-pip python3-venv \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

RUN pip install "grpcio>=1.62" "grpcio-tools>=1.62" "grpcio-health-checking>=1.62" "grpcio-reflection>=1.62" \
        "protobuf>=4.25" "numpy>=1.26" "opencv-python-headless>=4.9" "${ORT}>=1.17"

WORKDIR /app
COPY protos/ protos/
COPY service/ service/

RUN groupadd --system --gid 10001 bugdet \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin bugdet
# Numeric, so `runAsNonRoot` policies (Kubernetes) can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 50051 9100
VOLUME ["/models"]

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import grpc, sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; s = g.HealthStub(grpc.insecure_channel('127.0.0.1:50051')).Check(h.HealthCheckRequest(), timeout=4); sys.exit(0 if s.status == h.HealthCheckResponse.SERVING else 1)"]

ENTRYPOINT ["python3", "-m", "service", "--models", "/models", "--host", "0.0.0.0", "--port", "50051", "--metrics-port", "9100"]
