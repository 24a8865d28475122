"""Every `semrec` command speaks one vocabulary (`semrec.vocabulary`): one spelling per concept, one meaning
per flag, old spellings kept as hidden aliases that warn, and no `<bool>` after a flag in any help."""

import json
import types
import typing
import warnings
from pathlib import Path

import pytest
import typer
from semrec.cli import build_app
from semrec.cli_builder import leaf_fields
from semrec.config import is_per_invocation, with_leaves
from semrec.vocabulary import CONCEPTS, VOCABULARY, DeprecatedNameWarning, old_names_of, spelling_problems
from typer.testing import CliRunner

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"

# Commands that compute (torch, BLAS, ONNX Runtime) and so take --threads.
COMPUTING = {
    "demo", "publish", "recommend", "refresh", "train seqrec", "train tslrec", "train llmemb-rat", "train lh",
    "train llm2x", "train said", "train llmemb", "eval run", "eval popularity", "eval llmseqsim", "export onnx",
    "bench quality", "bench recipe", "bench refresh", "bench said", "bench seqrec", "bench seqrec-speed", "bench embed",
    "bench ranker",
}  # fmt: skip


def commands(group=None, path=()):
    """(command path, click command) of every leaf command of `semrec`."""
    group = group or typer.main.get_command(build_app())
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


ALL = dict(commands())


def options(command, hidden=False):
    return [p for p in command.params if p.param_type_name == "option" and p.hidden == hidden]


def field_name(option) -> str:
    return option.opts[0][2:].replace("-", "_")


def kind(annotation) -> str:
    """bool / list / path / number / text: what a flag takes, for comparing one name across commands."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return kind(args[0]) if len(args) == 1 else "text"
    if origin in (list, tuple):
        return "list"
    if origin is typing.Literal:
        return "text"
    return {bool: "bool", int: "number", float: "number", Path: "path"}.get(annotation, "text")


def test_the_walk_sees_every_command():
    assert len(ALL) >= 29 and {"train seqrec", "bench ranker", "serve", "recommend"} <= set(ALL)


@pytest.mark.parametrize("path", sorted(ALL))
def test_every_flag_is_spelled_as_the_vocabulary_says(path):
    names = [field_name(option) for option in options(ALL[path])]
    problems = [p for name in names for p in spelling_problems(name)]
    assert not problems, f"semrec {path}: " + "; ".join(problems)


def test_a_flag_name_means_one_kind_of_value_on_every_command():
    kinds: dict[str, dict[str, str]] = {}
    for path, command in ALL.items():
        config_class = command.callback.config_class
        for option in options(command):
            name = field_name(option)
            if name in config_class.model_fields:
                kinds.setdefault(name, {})[path] = kind(config_class.model_fields[name].annotation)
    # a benchmark that sweeps a setting takes a list of its values under the same name (bench refresh --said-epochs)
    clashes = {n: by for n, by in kinds.items() if len(set(by.values()) - {"list"}) > 1}
    assert not clashes, clashes


def test_the_checker_catches_old_spellings():
    assert spelling_problems("time_budget_min") and spelling_problems("stage1_budget_min")
    assert spelling_problems("max_seq_len") and spelling_problems("out_dir") and spelling_problems("ort_threads")
    assert spelling_problems("checkpoint_every_min") and spelling_problems("load_seconds")
    for concept in VOCABULARY:
        assert not spelling_problems(concept.name) and not spelling_problems("stage1_" + concept.name)


def test_the_shared_concepts_have_their_one_spelling():
    flags = {path: {field_name(o) for o in options(command)} for path, command in ALL.items()}
    assert all("threads" in flags[path] for path in COMPUTING), [p for p in COMPUTING if "threads" not in flags[p]]
    for path in ("train seqrec", "train said", "train llmemb", "train tslrec", "bench quality"):
        assert "max_train_minutes" in flags[path], path
    assert {"results"} <= flags["eval run"] and "out" not in flags["eval run"]
    assert "bundle" in flags["export onnx"] and "out" not in flags["export onnx"]
    assert "results_dir" in flags["bench ranker"] and "slo_p99_ms" in flags["bench ranker"]
    assert "out" in flags["bench load"] and "out" in flags["demo"] and "out" in flags["train seqrec"]
    assert all("max_seq_len" not in names for names in flags.values())
    assert {"history_cap", "max_len"} <= flags["train seqrec"]
    assert set(CONCEPTS) <= {n for names in flags.values() for n in names}
    for path in ("train said", "train lh", "train llmemb", "train tslrec", "train llmseqprompt", "bench embed"):
        assert "precision" in flags[path] and "bf16" not in flags[path], path


@pytest.mark.parametrize("path", sorted(ALL))
def test_old_names_are_hidden_aliases_of_visible_flags(path):
    command = ALL[path]
    config_class = command.callback.config_class
    visible = {field_name(o) for o in options(command)}
    hidden = {field_name(o): o for o in options(command, hidden=True)}
    for old, spec in old_names_of(config_class).items():
        assert old in hidden, f"semrec {path}: {old} is no hidden alias"
        assert spec.new in visible and f"--{spec.new.replace('_', '-')}" in hidden[old].help


def _example(path: str) -> dict:
    return json.loads((EXAMPLES / (path.replace(" ", "-") + ".json")).read_text())["config"]


SAMPLES = {"number": 3, "path": "some/dir", "text": "x"}


def _renames():
    for path, command in sorted(ALL.items()):
        config_class = command.callback.config_class
        for old, spec in old_names_of(config_class).items():
            if spec.convert is None:
                yield pytest.param(path, old, spec.new, id=f"{path}:{old}")


@pytest.mark.parametrize(("path", "old", "new"), list(_renames()))
def test_every_old_config_key_still_works_and_warns(path, old, new):
    config_class = ALL[path].callback.config_class
    field = config_class.model_fields[new]
    choices = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is typing.Literal else ()
    value = choices[-1] if choices else SAMPLES[kind(field.annotation)]
    if old == "max_seq_len":
        value = 7  # >= 3
    base = {k: v for k, v in _example(path).items() if k not in (new, old)}
    with pytest.warns(DeprecatedNameWarning, match=f"use --{new.replace('_', '-')}"):
        config = config_class.model_validate({**base, old: value})
    got = getattr(config, new)
    assert (got == value) if isinstance(value, int) else str(got) == str(value)
    with pytest.raises(ValueError, match="give only"):
        config_class.model_validate({**base, old: value, new: value})


def test_an_old_flag_on_the_command_line_warns_and_still_works():
    runner = CliRunner()
    args = ["data", "stats", "--data", "synthetic:users=60,items=30,seed=2", "--kcore", "0"]
    result = runner.invoke(build_app(), [*args, "--json-output", "--max-seq-len", "4"])
    assert result.exit_code == 0, result.output
    assert "--json-output (config key 'json_output') is deprecated: use --output-format" in result.stderr
    assert "--max-seq-len (config key 'max_seq_len') is deprecated: use --history-cap" in result.stderr
    stats = json.loads(result.stdout)
    assert stats["after_kcore"]["avg_seq_len"] <= 4  # the cap applied


def test_an_old_key_in_a_config_file_warns_and_still_works(tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"data": "synthetic:users=60,items=30,seed=2", "kcore": 0, "json_output": True}))
    result = CliRunner().invoke(build_app(), ["data", "stats", "--config", str(job)])
    assert result.exit_code == 0, result.output
    assert "deprecated: use --output-format" in result.stderr and json.loads(result.stdout)["dataset"] == "synthetic-u60-i30-s2"


def test_the_same_setting_under_both_names_is_refused():
    result = CliRunner().invoke(build_app(), ["data", "stats", "--max-seq-len", "4", "--history-cap", "5"])
    assert result.exit_code == 2 and "give only --history-cap" in result.stderr


def required_invocation(config_class) -> dict:
    """Placeholders for the required per-invocation settings (a run's --out), which example files leave out."""
    return {name: "RUN_DIR" for name, (_, field) in leaf_fields(config_class).items()
            if is_per_invocation(field) and field.is_required()}


def test_examples_use_the_current_names():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecatedNameWarning)
        for path, command in ALL.items():
            config_class = command.callback.config_class
            config_class.model_validate(with_leaves(config_class, _example(path), required_invocation(config_class)))


@pytest.mark.parametrize("args", [[], *[p.split() for p in sorted(ALL)]], ids=lambda a: " ".join(a) or "semrec")
def test_help_shows_no_bool_placeholder(args):
    result = CliRunner().invoke(build_app(), [*args, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.stdout and "--help" in result.stdout


@pytest.mark.parametrize(("args", "flag"), [
    (["train", "seqrec", "--init", "no/such/table.npz"], "--init"),
    (["eval", "llmseqsim", "--table", "no/such/table.npz"], "--table"),
    (["bench", "quality", "--tables", "said=no/such/run"], "--tables said="),
    (["bench", "quality", "--recorded", "no/such/results.json"], "--recorded"),
], ids=lambda v: v if isinstance(v, str) else " ".join(v[:2]))  # fmt: skip
def test_a_bad_path_flag_fails_before_the_data_loads(args, flag, tmp_path):
    # the dataset does not exist either: the flag's error comes first, so nothing was read
    result = CliRunner().invoke(build_app(), [*args, "--data", str(tmp_path / "no-dataset"), "--out", str(tmp_path / "r")]
                                if args[0] == "train" else [*args, "--data", str(tmp_path / "no-dataset")])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert flag in result.stderr and "no-dataset" not in result.stderr


PRECISION_OF_BF16 = {True: "bf16", False: "fp32", None: "auto"}


@pytest.mark.parametrize("path", ["train lh", "train llmemb", "train tslrec", "train llmseqprompt"])
@pytest.mark.parametrize("bf16", [True, False, None])
def test_the_old_bf16_key_is_a_precision(path, bf16):
    config_class = ALL[path].callback.config_class
    base = with_leaves(config_class, _example(path), required_invocation(config_class))
    with pytest.warns(DeprecatedNameWarning, match="--bf16 .* use --precision"):
        config = config_class.model_validate({**base, "bf16": bf16})
    assert config.precision == PRECISION_OF_BF16[bf16]
    with pytest.raises(ValueError, match="give only --precision"):
        config_class.model_validate({**base, "bf16": bf16, "precision": "fp32"})


def test_bench_embed_times_a_list_of_precisions_and_reads_the_old_bf16_list():
    config_class = ALL["bench embed"].callback.config_class
    assert config_class.model_validate({}).precision == ["fp32", "bf16"]
    with pytest.warns(DeprecatedNameWarning, match="use --precision"):
        assert config_class.model_validate({"bf16": ["true", "false"]}).precision == ["bf16", "fp32"]
        assert config_class.model_validate({"bf16": [False]}).precision == ["fp32"]


def test_said_renames_are_the_old_values_under_new_names():
    config_class = ALL["train said"].callback.config_class
    with pytest.warns(DeprecatedNameWarning) as caught:
        config = config_class.model_validate({"data": "d", "resume": "runs/said", "init": "random"})
    assert config.resume_from == Path("runs/said") and config.prefix_init == "random"
    messages = " ".join(str(w.message) for w in caught)
    assert "--resume (config key 'resume') is deprecated: use --resume-from" in messages
    assert "--init (config key 'init') is deprecated: use --prefix-init" in messages
    assert "resume_from" not in config.saved_dict() and config.saved_dict()["prefix_init"] == "random"


@pytest.mark.parametrize(("args", "old", "new"), [
    (["train", "lh", "--no-bf16"], "--bf16", "--precision"),
    (["train", "tslrec", "--bf16", "--pretrained", "x"], "--bf16", "--precision"),
    (["bench", "embed", "--bf16", "false,true"], "--bf16", "--precision"),
    (["train", "said", "--resume", "no/such/run"], "--resume", "--resume-from"),
    (["train", "said", "--init", "random"], "--init", "--prefix-init"),
], ids=lambda v: v if isinstance(v, str) else " ".join(v))  # fmt: skip
def test_an_old_precision_or_said_flag_on_the_command_line_warns(args, old, new, tmp_path):
    # the data is missing: the command stops with exit 2 after the flags were read (and warned about)
    result = CliRunner().invoke(build_app(), [*args, "--data", str(tmp_path / "no-dataset"), "--out", str(tmp_path / "r")]
                                if args[0] == "train" else [*args, "--data", str(tmp_path / "no-dataset")])  # fmt: skip
    assert f"{old} (config key '{old[2:]}') is deprecated: use {new}" in result.stderr, result.output
    assert result.exit_code == 2 and "Traceback" not in result.output
