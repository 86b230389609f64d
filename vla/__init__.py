"""vla-stack: the VLA model, training, checkpoints and the `vla` command line."""

__version__ = "0.1.0"
