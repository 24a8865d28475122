"""Export a trained sequential recommender as a serving bundle (ONNX encoder + normalised item table)."""

from semrec_worker.export.onnx import ExportResult, export_run, load_run_encoder

__all__ = ["ExportResult", "export_run", "load_run_encoder"]
