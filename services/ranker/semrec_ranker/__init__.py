"""semrec online ranker: FastAPI + ONNX Runtime, cosine top-k over the in-memory item table."""
