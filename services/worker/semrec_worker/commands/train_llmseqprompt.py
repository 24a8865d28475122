"""`semrec train llmseqprompt`: LoRA fine-tuning of the LM on session prompts, then generated names mapped to
the catalogue and evaluated (the method: `semrec_worker.methods.llmseqprompt`)."""

from __future__ import annotations

from semrec.cli_builder import CommandGroups, config_command

from semrec_worker.methods.llmseqprompt.settings import TrainLLMSeqPromptConfig


def train_llmseqprompt(config: TrainLLMSeqPromptConfig):
    from semrec_worker.methods.llmseqprompt.job import train_llmseqprompt as run  # torch only when it runs

    return run(config)


def register(groups: CommandGroups) -> None:
    config_command(
        groups.train,
        "llmseqprompt",
        TrainLLMSeqPromptConfig,
        train_llmseqprompt,
        "LLMSeqPrompt (Harte et al.): LoRA fine-tune the LM on 'session item names -> next item name', generate "
        "names for each test session, map them to catalogue items by text embedding, evaluate (full, sampled).",
    )
