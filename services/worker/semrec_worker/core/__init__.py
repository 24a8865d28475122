"""The bottom layer of the worker, importable without torch: names shared by the CLI and the code
(`names`), where and in what precision to run (`runtime`), LoRA set-up (`lora`) and PCA (`reduction`)."""
