"""User prompt files: ``--suite path/to/prompts.jsonl``.

One JSON object per line (UTF-8):

- ``prompt`` (required): a non-empty string, used exactly as written;
- ``id`` (optional): a string or an integer, unique in the file; default ``line-<n>`` with *n*
  the 1-based line number (so ids stay put when lines are appended, but move when lines are
  inserted above: give explicit ids to files that are edited);
- ``reference`` (optional): a string (or ``null``), the human continuation for reference-based
  scorers.

Other keys are ignored, so files can carry their own metadata. Blank lines are skipped. Any other
problem (an empty file, invalid JSON, a line that is not an object, a missing or empty prompt, a
wrong type, a repeated id) is an error that names the file and the line. The suite version is the
first 16 hex digits of the sha256 of the file's bytes, so any edit makes a new run identity.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from bench.errors import BenchError, parse_problem
from bench.specs import LoadedSuite, Prompt


def _fail(file: Path, line: int, message: str) -> BenchError:
    return BenchError(f"{file}, line {line}: {message}")


def _parse_line(raw: bytes, line: int, file: Path) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8-sig" if line == 1 else "utf-8")
    except UnicodeDecodeError as e:
        raise _fail(file, line, f"not UTF-8 text ({e.reason} at byte {e.start} of the line)") from None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise _fail(file, line, f"invalid JSON ({parse_problem(e)})") from None
    if not isinstance(obj, dict):
        raise _fail(file, line, f"expected a JSON object, got {_json_type(obj)}")
    return obj


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _prompt_of(obj: dict[str, Any], line: int, file: Path) -> Prompt:
    """Validate one object and make its prompt."""
    if "prompt" not in obj:
        raise _fail(file, line, "missing 'prompt'")
    text = obj["prompt"]
    if not isinstance(text, str):
        raise _fail(file, line, f"'prompt' must be a string, got {_json_type(text)}")
    if not text.strip():
        raise _fail(file, line, "'prompt' is empty")
    pid = obj.get("id", f"line-{line}")
    # bool is an int in Python but `true` is no id.
    if isinstance(pid, bool) or not isinstance(pid, (str, int)):
        raise _fail(file, line, f"'id' must be a string or an integer, got {_json_type(pid)}")
    pid = str(pid)
    if not pid.strip():
        raise _fail(file, line, "'id' is empty")
    reference = obj.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise _fail(file, line, f"'reference' must be a string, got {_json_type(reference)}")
    for field, value in (("prompt", text), ("id", pid), ("reference", reference)):
        if value is not None and not _encodable(value):
            raise _fail(file, line, f"'{field}' holds a lone surrogate (an escape like \\ud800 that is no character)")
    return Prompt(id=pid, text=text, reference=reference)


def _plain_prompt(raw: bytes, line: int) -> Prompt | None:
    """The prompt of a line that is plainly valid (the common case, checked at C speed), or None to
    let :func:`_prompt_of` check it and name what is wrong. A million-line suite loads in seconds."""
    if line == 1 or b"\\u" in raw or b"\x00" in raw:  # a BOM; an escape that might be a lone
        return None  # surrogate; a NUL, from which json.loads would guess UTF-16
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if type(obj) is not dict:
        return None
    text, pid, reference = obj.get("prompt"), obj.get("id", f"line-{line}"), obj.get("reference")
    if type(text) is not str or not text.strip() or type(pid) not in (str, int) or \
            (reference is not None and type(reference) is not str):
        return None
    pid = str(pid)
    return Prompt(id=pid, text=text, reference=reference) if pid.strip() else None


def _encodable(text: str) -> bool:
    """Whether ``text`` is real Unicode: JSON escapes can make lone surrogates no tokenizer takes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load_jsonl(path: str | Path) -> LoadedSuite:
    """Read and validate a JSONL prompt file; every problem is a BenchError naming the line."""
    file = Path(path).resolve()
    if not file.is_file():
        raise BenchError(f"prompt file {path} does not exist" + (" (it is a folder)" if file.is_dir() else ""))
    try:
        data = file.read_bytes()
    except OSError as e:
        raise BenchError(f"cannot read prompt file {file}: {e.strerror}") from None
    prompts: list[Prompt] = []
    first_line: dict[str, int] = {}
    for line, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        prompt = _plain_prompt(raw, line) or _prompt_of(_parse_line(raw, line, file), line, file)
        if prompt.id in first_line:
            raise _fail(file, line, f"duplicate id '{prompt.id}' (first used on line {first_line[prompt.id]})")
        first_line[prompt.id] = line
        prompts.append(prompt)
    if not prompts:
        raise BenchError(f"prompt file {file} is empty: expected one JSON object with a 'prompt' per line")
    version = hashlib.sha256(data).hexdigest()[:16]
    return LoadedSuite(prompts=tuple(prompts), source=str(file), version=version)
