# The online ranker, CPU: FastAPI + ONNX Runtime (CPU), no torch. Build from the repository root:
#   docker build -f deploy/ranker.Dockerfile -t semrec/ranker:0.1.0 .
# Settings come from SEMREC_* environment variables (see docs/deploy.md).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared shared
# Only the ranker's package: the worker (torch, transformers) never enters this image.
COPY services/ranker services/ranker
RUN python -m venv /opt/semrec \
 && /opt/semrec/bin/pip install --no-cache-dir ".[ranker]" \
 && if /opt/semrec/bin/python -c "import torch" 2>/dev/null; then echo "torch must not be in the ranker image" >&2; exit 1; fi

FROM python:3.11-slim
# An empty working directory the ranker cannot write to: nothing a relative path could reach.
RUN useradd --system --uid 10001 --no-create-home semrec \
 && mkdir -p /var/lib/semrec/empty && chmod 0555 /var/lib/semrec/empty
WORKDIR /var/lib/semrec/empty
COPY --from=build /opt/semrec /opt/semrec
ENV PATH=/opt/semrec/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SEMREC_REDIS_URL=redis://redis:6379/0 \
    SEMREC_CATALOG=demo
USER semrec
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["semrec", "serve", "--host", "0.0.0.0", "--port", "8000"]
