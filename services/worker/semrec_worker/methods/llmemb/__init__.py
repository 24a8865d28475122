"""LLMEmb (Liu et al., AAAI'25): SCFT of an LLM into an item-embedding generator, then RAT.

- `settings`: SCFT settings and the configs of `semrec train llmemb` / `llmemb-rat` (torch-free);
- `model`: SCFT (eqs. 3-5), the RAT adapter and collaborative alignment (eqs. 6-8);
- `rat`: RAT training (a backbone through the adapter, plus the alignment loss);
- `job`: the two jobs' run functions;
- `refresh_encoder`: the `llmemb` item encoder a RAT run saves for `semrec refresh`.
"""
