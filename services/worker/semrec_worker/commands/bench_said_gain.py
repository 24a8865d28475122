"""`semrec bench said-gain`: stage 2 from every table snapshot of a SAID stage-1 run, on validation only (the SAID
paper's Figure 5: stage-2 gain against stage-1 generation accuracy). Writes results/said-gain-<dataset>.json and
docs/images/said-gain-<dataset>.png (see docs/said.md)."""

from __future__ import annotations

from pathlib import Path

from semrec.cli_builder import CommandGroups, config_command, echo
from semrec.results import machine_info, write_results

from semrec_worker.core.checks import require_existing
from semrec_worker.data.dataset import load_dataset
from semrec_worker.experiments.config import SAIDGainConfig
from semrec_worker.experiments.config import command_line as flags_command_line


def bench_said_gain(config: SAIDGainConfig) -> Path:
    from semrec_worker.core.runtime import apply_threads
    from semrec_worker.experiments import said_gain  # imports torch: only when the command runs

    require_existing("--said-run", config.said_run, "no such run directory")  # before the data loads
    snapshots = said_gain.snapshots(config.said_run)
    apply_threads(config.threads)
    dataset = load_dataset(config)
    runs_dir = config.runs_dir or Path("runs") / f"said-gain-{dataset.name}"
    out = config.results or Path("results") / f"said-gain-{dataset.name}.json"
    machine = machine_info()
    echo(f"machine: {machine['cpu']} ({machine['cpu_count']} CPUs, load {machine['load_average_1_5_15']}), "
         f"torch {machine.get('torch')}, cuda {machine.get('cuda')}")
    echo(f"settings: {flags_command_line('semrec bench said-gain', config)}")
    echo(f"{len(snapshots)} snapshots of {config.said_run} (steps {', '.join(str(s['step']) for s in snapshots)}) "
         f"x {len(config.backbones)} backbones x {len(config.seeds)} seeds, plus a random-init reference each; "
         f"cells under {runs_dir}")

    def record(cells: list[said_gain.GainCell]) -> None:  # every finished cell is in the file at once
        write_results(out, said_gain.rows(cells, dataset.name, config))

    cells = said_gain.run(config, dataset, runs_dir, on_cell=record)
    runs = said_gain.rows(cells, dataset.name, config)
    write_results(out, runs)
    image = said_gain.figure(runs, config.images_dir / f"said-gain-{dataset.name}.png", dataset.name)
    echo(said_gain.markdown(runs))
    echo(f"results: {out}, figure: {image}")
    return out


def register(groups: CommandGroups) -> None:
    config_command(
        groups.bench,
        "said-gain",
        SAIDGainConfig,
        bench_said_gain,
        "Stage 2 from every table snapshot of a SAID run (`semrec train said --snapshot-tables`): one `semrec train "
        "seqrec --init <snapshot> --no-evaluate-test` cell per snapshot x backbone x seed plus a random-init reference, "
        "reused when done; validation NDCG@10 gain against generation accuracy (the SAID paper's Figure 5). Writes "
        "results/said-gain-<dataset>.json and docs/images/said-gain-<dataset>.png.",
    )
