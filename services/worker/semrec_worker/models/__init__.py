"""Recommenders that need no sequence encoder (baselines)."""
