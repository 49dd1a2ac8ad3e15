"""LoRA fine-tuning of the base model on a selection (stage `train`)."""
