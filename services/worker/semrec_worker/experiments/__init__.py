"""The side-by-side reproduction report (`semrec bench quality`): the grid of methods x backbones x seeds,
its tables in the layouts of the SAID and LLMEmb papers, and the figures of docs/results.md."""
