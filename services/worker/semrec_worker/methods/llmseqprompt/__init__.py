"""LLMSeqPrompt (Harte et al., RecSys'23): a LoRA-tuned LM that writes the next item's name, mapped to the
catalogue by text embedding."""
