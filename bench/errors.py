"""The one exception type users see: a clear one-line message and exit code 2."""


class BenchError(Exception):
    """Bad input or an unmet requirement. The CLI prints ``error: <message>`` and exits 2."""

    exit_code = 2


def check(condition: bool, message: str) -> None:
    """Raise :class:`BenchError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise BenchError(message)


def one_line(error: BaseException, limit: int = 600) -> str:
    """The whole of an exception's message on one line (library messages span lines, and their
    first line alone can stop mid-sentence, e.g. before the list of what was tried)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."
