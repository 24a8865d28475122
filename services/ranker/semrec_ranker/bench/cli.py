"""`semrec bench ranker` / `encoder` / `faults` registration (the benchmark lives in bench/ranker.py, imported when it runs)."""

from __future__ import annotations

from semrec.cli_builder import CommandGroups, config_command


def register(groups: CommandGroups) -> None:
    from semrec_ranker.bench.ranker import RankerBenchConfig

    def run(config: RankerBenchConfig):
        from semrec_ranker.bench.ranker import bench_ranker

        return bench_ranker(config)

    config_command(groups.bench, "ranker", RankerBenchConfig, run,
                   "Ranker latency: in-process encode+top-k (10k..1M items, SASRec/GRU4Rec), ANN recall, HTTP load.")  # fmt: skip

    from semrec_ranker.bench.encoder_graph import EncoderGraphBenchConfig

    def run_encoder(config: EncoderGraphBenchConfig):
        from semrec_ranker.bench.encoder_graph import bench_encoder_graph

        return bench_encoder_graph(config)

    config_command(groups.bench, "encoder", EncoderGraphBenchConfig, run_encoder,
                   "Encoder graph form in process: final position vs all positions (encoder ms, encode+top-k floor).")  # fmt: skip

    from semrec_ranker.bench.faults import FaultBenchConfig

    def run_faults(config: FaultBenchConfig):
        from semrec_ranker.bench.faults import bench_faults

        return bench_faults(config)

    config_command(groups.bench, "faults", FaultBenchConfig, run_faults,
                   "Faults under load: Redis SIGKILL/SIGSTOP/data loss, corrupt/unsigned bundles, publisher SIGKILL.")  # fmt: skip
