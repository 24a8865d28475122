"""The batch embedding refresh: new and changed items get vectors without retraining the backbone.

- `text`: item captions, their content hashes, and reading an items source;
- `encoders`: the `ItemEncoder` protocol (items -> vectors in the bundle's item space), its registry, the
  serving transform, and the generic `LinearTextMapEncoder`;
- `llmemb_encoder`, `said_encoder`: the method encoders saved by LLMEmb RAT and SAID stage-2 runs;
- `job`: the add/change/remove/unchanged diff and the refreshed bundle.
"""
