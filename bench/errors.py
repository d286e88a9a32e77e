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


def parse_problem(error: BaseException) -> str:
    """What a JSON or TOML parser's error means, briefly: the parser's own message, or the two it
    does not phrase (a number of thousands of digits, nesting thousands of levels deep)."""
    if isinstance(error, RecursionError):
        return "nested too deeply to read"
    msg = getattr(error, "msg", None)
    if msg is not None and hasattr(error, "colno"):  # json.JSONDecodeError
        return f"{msg} at column {error.colno}"
    text = str(error)
    if "digits" in text and "int" in text:  # "Exceeds the limit (4300 digits) for integer string conversion"
        return "a number too long to read (over 4300 digits)"
    return text.splitlines()[0] if text else type(error).__name__
