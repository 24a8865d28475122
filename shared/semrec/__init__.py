"""semrec: semantic item embeddings from language models, sequential recommenders, online serving.

`semrec` (this package, in `shared/`) holds what both services use: typed configs, the `ItemTable`
format, results files, the model-bundle format and its Redis store, and the `semrec` command line.
The offline worker lives in `semrec_worker`, the online ranker in `semrec_ranker`.
"""

__version__ = "0.1.0"
