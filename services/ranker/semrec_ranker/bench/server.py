"""The ranker app for the benchmark, with the ONNX Runtime encoder (as `semrec serve`) or the naive peer.

`python -m semrec_ranker.bench.server --encoder torch-eager --backbone sasrec --n-items N --port P`: the
same FastAPI app, but the sequence encoder is the plain PyTorch module run eagerly (rebuilt from the same
seed as the published ONNX one). Settings (Redis, catalogue) come from SEMREC_* as for `semrec serve`.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoder", choices=["onnx", "torch-eager"], default="onnx")
    parser.add_argument("--backbone", default="sasrec")
    parser.add_argument("--n-items", type=int, required=True)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder-graph", choices=["final-position", "all-positions"], default="final-position")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    import uvicorn

    from semrec_ranker.core.config import get_settings
    from semrec_ranker.main import create_app
    from semrec_ranker.server import uvicorn_options

    factory = None
    if args.encoder == "torch-eager":
        from semrec_ranker.bench.synthetic import build_encoder_module
        from semrec_ranker.engine.encoder import TorchEagerEncoder

        module = build_encoder_module(args.backbone, args.n_items, args.dim, args.max_len, args.seed,
                                      args.encoder_graph)

        def factory(bundle):
            return TorchEagerEncoder(module)

    app = create_app(encoder_factory=factory)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, loop="uvloop",
                **uvicorn_options(get_settings()))  # fmt: skip


if __name__ == "__main__":
    main()
