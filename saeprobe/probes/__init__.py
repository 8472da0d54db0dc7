"""Probes on hidden states, SAE latents and text (`methods`, chosen as the sparse-probing
paper does in `validation`), run over the regimes (`sweep`) and summarized (`summary`).

Kept free of imports, so that each stage depends only on the modules it uses."""
