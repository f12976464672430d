"""GRPO Studio: LoRA + GRPO fine-tuning of small chat models, with a live dashboard."""

__version__ = "0.1.0"
