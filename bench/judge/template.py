"""Versioned judging rubrics: TOML files with a fixed set of required fields.

A template has ``name``, ``version``, ``system``, ``user`` (containing ``{context}``, ``{first}``
and ``{second}``), ``answer_pattern`` (a regular expression whose first group captures a label)
and ``[labels]`` with ``first``, ``second`` and ``tie``. Placeholders are replaced literally (not
with ``str.format``), so braces in prompts or continuations are harmless.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError, parse_problem

DEFAULT_TEMPLATE = Path(__file__).resolve().parent / "templates" / "pairwise-v1.toml"
REQUIRED = ("name", "version", "system", "user", "answer_pattern", "labels")
PLACEHOLDERS = ("{context}", "{first}", "{second}")


@dataclass(frozen=True)
class Template:
    name: str
    version: str
    system: str
    user: str
    answer_pattern: str
    labels: dict[str, str]

    @property
    def ident(self) -> str:
        """``name@version``: part of every cached verdict's key."""
        return f"{self.name}@{self.version}"

    def render(self, context: str, first: str, second: str) -> tuple[str, str]:
        """(system, user) messages for one ordered pair."""
        user = self.user.replace("{context}", context).replace("{first}", first).replace("{second}", second)
        return self.system, user

    def parse(self, answer: str) -> str:
        """``first``, ``second``, ``tie`` or ``invalid``; the last match wins (verdicts come last)."""
        matches = re.findall(self.answer_pattern, answer or "")
        if not matches:
            return "invalid"
        label = matches[-1] if isinstance(matches[-1], str) else matches[-1][0]
        for role, text in self.labels.items():
            if label.strip().lower() == text.lower():
                return role
        return "invalid"


def _toml_load(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise BenchError("reading judge templates on Python 3.10 needs tomli: pip install tomli") from None
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise BenchError(f"cannot read judge template {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BenchError(f"judge template {path} is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise BenchError(f"judge template {path} is not valid TOML: {parse_problem(exc)}") from None


def load_template(path: str | Path | None = None) -> Template:
    """Load and check a template (the built-in coherence/diversity rubric by default)."""
    path = Path(path) if path else DEFAULT_TEMPLATE
    data = _toml_load(path)
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise BenchError(f"judge template {path} lacks required field(s): {', '.join(missing)}")
    labels = data["labels"]
    if not isinstance(labels, dict) or any(k not in labels for k in ("first", "second", "tie")):
        raise BenchError(f"judge template {path}: [labels] needs first, second and tie")
    absent = [p for p in PLACEHOLDERS if p not in str(data["user"])]
    if absent:
        raise BenchError(f"judge template {path}: 'user' lacks placeholder(s) {', '.join(absent)}")
    try:
        pattern = re.compile(data["answer_pattern"])
    except re.error as exc:
        raise BenchError(f"judge template {path}: answer_pattern is not a valid regex ({exc})") from None
    if pattern.groups < 1:
        raise BenchError(f"judge template {path}: answer_pattern needs a group capturing the label")
    return Template(
        name=str(data["name"]), version=str(data["version"]), system=str(data["system"]), user=str(data["user"]),
        answer_pattern=data["answer_pattern"], labels={k: str(labels[k]) for k in ("first", "second", "tie")},
    )
