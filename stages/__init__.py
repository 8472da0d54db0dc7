"""The pipeline's DVC stages: one module per stage, run as `python -m stages.<name>` (dvc.yaml)."""
