"""PyTorch reference and training code for Partition Generative Models (docs/model.md)."""
