"""The two kinds of expected failure; anything else is a bug or a data/numerical failure."""


class ConfigError(ValueError):
    """Bad input: the message names the parameter, file or column and what was expected.
    A stage that meets one stops with the message and exit code 2."""


class Infeasible(Exception):
    """A setting that this data cannot support (too few examples of a class, no shifted
    split, a k wider than the SAE): the sweep records it with its reason and goes on."""
