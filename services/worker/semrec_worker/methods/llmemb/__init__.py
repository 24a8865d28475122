"""LLMEmb (Liu et al., AAAI'25): SCFT of an LLM into an item-embedding generator, then RAT.

- `model`: SCFT (eqs. 3-5), the RAT adapter and collaborative alignment (eqs. 6-8);
- `refresh_encoder`: the `llmemb` item encoder a RAT run saves for `semrec refresh`.
"""
