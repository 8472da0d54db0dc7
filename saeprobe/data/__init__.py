"""Data sets: sources that all yield one table schema, and seeded stratified splits."""

from saeprobe.data.prepare import prepare_dataset
from saeprobe.data.schema import SCHEMA, read_prepared

__all__ = ["SCHEMA", "prepare_dataset", "read_prepared"]
