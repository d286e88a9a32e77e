"""The one exception type users see: a clear one-line message and exit code 2."""


class BenchError(Exception):
    """Bad input or an unmet requirement. The CLI prints ``error: <message>`` and exits 2."""

    exit_code = 2


def check(condition: bool, message: str) -> None:
    """Raise :class:`BenchError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise BenchError(message)
