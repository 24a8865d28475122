"""The serving engine: bundle -> (encoder, item index) -> recommendations, and its hot reload."""

from semrec_ranker.engine.engine import Engine, Recommendation
from semrec_ranker.engine.reloader import BundleHolder, Reloader

__all__ = ["BundleHolder", "Engine", "Recommendation", "Reloader"]
