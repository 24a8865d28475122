"""TSLRec (Liu et al.): pre-grouping, user-level SFT, item knowledge fused into a gated backbone.

- `settings`: the method's settings (torch-free);
- `model`: pre-grouping, the user-SFT model and the gated fusion item layer.
"""
