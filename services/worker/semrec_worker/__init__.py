"""semrec offline worker: datasets, item-embedding methods, sequential recommenders, export and publish."""
