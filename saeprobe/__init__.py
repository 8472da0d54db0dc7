"""saeprobe: sparse-autoencoder features and probes for text classification."""

__version__ = "0.1.0"
