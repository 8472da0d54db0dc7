"""Self-regularization (Wu et al.): classifiers on hidden states that are kept from using the
SAE latents a user or a judge marked unintended."""
