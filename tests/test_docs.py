"""The README and docs/ cannot go stale: every `bench` command in them parses against the real CLI,
the blocks marked ``bash docs-run`` run as written, every `make` target named exists, and every
relative link points at a file.

A command in a block marked ``docs-run`` runs in a scratch folder that holds ``../shared`` (the
offline assets, as beside a clone) and links to the repository's ``sweeps/``; the blocks of one
page run in order in one folder, so a later command may read what an earlier one wrote.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from bench.cli import main

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELLS = ("bash", "sh", "shell", "console")


def blocks(page: Path) -> list[tuple[str, str]]:
    """(info string, body) of each fenced block of ``page``."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(page.read_text(encoding="utf-8"))]


def shell_lines(body: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, blank and comment-only lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def bench_commands() -> list[tuple[str, str]]:
    """(page, command) of every `bench ...` command in a shell block of the README and docs/."""
    found = []
    for page in PAGES:
        for info, body in blocks(page):
            if info.split(" ")[0] not in SHELLS:
                continue
            for line in shell_lines(body):
                words = shlex.split(line, comments=True)
                if words and words[0] == "bench":
                    found.append((page.relative_to(REPO).as_posix(), line))
    return found


def parse(words: list[str]) -> None:
    """Parse ``bench WORDS`` as click would, without running it: unknown commands, options and
    badly typed values raise click's errors."""
    ctx = main.make_context("bench", list(words), resilient_parsing=False)
    command, rest = main, ctx.protected_args + ctx.args
    while isinstance(command, click.Group) and rest:
        name, *rest = rest
        sub = command.get_command(ctx, name)
        assert sub is not None, f"no command 'bench ... {name}'"
        ctx = sub.make_context(name, rest, parent=ctx)
        command, rest = sub, ctx.protected_args + ctx.args if isinstance(sub, click.Group) else []


def test_the_docs_hold_commands() -> None:
    pages = {page for page, _ in bench_commands()}
    assert "README.md" in pages and len(pages) >= 6, pages


@pytest.mark.parametrize("page,command", bench_commands(), ids=lambda v: v if "/" in v or v.endswith(".md") else v[:60])
def test_every_bench_command_parses(page: str, command: str) -> None:
    words = shlex.split(command, comments=True)
    try:
        parse(words[1:])
    except click.exceptions.Exit:  # --help and friends
        pass
    except click.UsageError as exc:
        pytest.fail(f"{page}: `{command}` no longer parses: {exc.format_message()}")


def runnable_pages() -> list[Path]:
    return [page for page in PAGES if any(info.split(" ")[0] in SHELLS and "docs-run" in info.split()
                                          for info, _ in blocks(page))]


@pytest.mark.parametrize("page", runnable_pages(), ids=lambda p: p.name)
def test_docs_run_blocks_run_as_written(page: Path, tmp_path: Path, shared: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(shared)
    (work / "sweeps").symlink_to(REPO / "sweeps")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("COLUMNS", "200")
    for info, body in blocks(page):
        if info.split(" ")[0] not in SHELLS or "docs-run" not in info.split():
            continue
        for line in shell_lines(body):
            result = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True)
            assert result.returncode == 0, f"{page.name}: `{line}` failed:\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}"


def test_make_targets_named_in_the_docs_exist() -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))
    named = set()
    for page in PAGES:
        for info, body in blocks(page):
            if info.split(" ")[0] in SHELLS:
                named |= {m for line in shell_lines(body) for m in re.findall(r"^make ([a-z][\w-]*)", line)}
        named |= set(re.findall(r"`make ([a-z][\w-]*)", page.read_text()))
    assert named and named <= targets, sorted(named - targets)


def test_relative_links_resolve() -> None:
    dead = []
    for page in PAGES:
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:|^#", target):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                dead.append(f"{page.relative_to(REPO)}: {target}")
    assert not dead, dead


def test_readme_is_short() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) < 200
