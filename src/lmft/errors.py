"""One exception type for problems a user can fix; entry points print it without a traceback."""


class LmftError(RuntimeError):
    """Bad input or a missing prerequisite; the message says what to do."""
