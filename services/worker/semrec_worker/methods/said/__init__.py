"""SAID (Hu et al., WWW'24 companion): item embeddings learnt through a frozen causal LM.

- `model`: the method itself (projectors, eq. 3's caption loss, table export);
- `settings`: its settings and `TrainSAIDConfig` (torch-free, the CLI builds its flags from them);
- `batches`, `generation`, `report`, `trainer`: tokenised captions, generation accuracy, reports and the
  stage-1 training loop; `bench`: trainer vs a plain fp32 loop;
- `refresh_encoder`: the `said` item encoder a SAID-initialised stage-2 run saves for `semrec refresh`;
- `stage2`: the stage-2 summary script.
"""
