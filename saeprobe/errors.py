"""One exception type for every mistake a user can make in params, files or data."""


class ConfigError(ValueError):
    """Bad input: the message names the parameter, file or column and what was expected."""
