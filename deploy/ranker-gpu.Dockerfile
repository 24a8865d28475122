# The online ranker on a GPU: the same app with onnxruntime-gpu; it selects CUDAExecutionProvider at run
# time when a GPU is visible (else CPU). Build from the repository root:
#   docker build -f deploy/ranker-gpu.Dockerfile -t semrec/ranker-gpu:0.1.0 .
# Run with `--gpus all` (docker) or a `nvidia.com/gpu` resource (Kubernetes). CUDA 12 + cuDNN 9 match
# onnxruntime-gpu >= 1.20.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home semrec
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared shared
COPY services/ranker services/ranker
# `gpu-ranker` is the `ranker` extra with onnxruntime-gpu in place of onnxruntime (never both: they install
# the same module).
RUN python3 -m venv /opt/semrec \
 && /opt/semrec/bin/pip install --no-cache-dir ".[gpu-ranker]" \
 && /opt/semrec/bin/python -c "import onnxruntime as ort; assert 'CUDAExecutionProvider' in ort.get_available_providers()" \
 && rm -rf /src \
 && mkdir -p /var/lib/semrec/empty && chmod 0555 /var/lib/semrec/empty
# An empty working directory the ranker cannot write to: nothing a relative path could reach.
WORKDIR /var/lib/semrec/empty
ENV PATH=/opt/semrec/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SEMREC_REDIS_URL=redis://redis:6379/0 \
    SEMREC_CATALOG=demo
USER semrec
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["semrec", "serve", "--host", "0.0.0.0", "--port", "8000"]
