"""Quantization-aware training on the offline data sets, checkpoints, and accuracy through the hardware path."""
