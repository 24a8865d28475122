"""Benchmarks of the serving path (`semrec bench ranker`) and synthetic bundles to run them on."""
