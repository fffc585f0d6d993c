"""The one exception type that means "the user asked for something invalid"."""


class ConfigError(ValueError):
    """A bad option or value. Its message is one line naming the key, the value and the fix.

    Entry scripts print it without a stack trace and exit with status 2.
    """
