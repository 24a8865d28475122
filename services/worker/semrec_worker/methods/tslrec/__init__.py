"""TSLRec (Liu et al.): pre-grouping, user-level SFT, item knowledge fused into a gated backbone.

- `settings`: the method's settings and `semrec train tslrec`'s config (torch-free);
- `model`: pre-grouping, the user-SFT model and the gated fusion item layer;
- `train`: stage 1 (or a saved one reused) and the gated backbone.
"""
