"""Load generation against the ranker: Locust runs (`runner`), latency statistics from every request
(`samples`), the ranker's memory over a soak (`memory`) and the plot (`plot`). Used by `semrec bench load`."""
