"""``--help`` with the options in named sections, for commands with many options (``bench run``).

Click lists every option in one block; ``bench run`` has over thirty. A command made with
``cls=SectionedCommand, sections=((title, (name, ...)), ...)`` prints them under those titles,
in that order, and anything not named under "Other options", so a new option is never hidden.
"""

from __future__ import annotations

from typing import Any

import click


class SectionedCommand(click.Command):
    """A click command whose ``--help`` groups its options into ``sections``."""

    def __init__(self, *args: Any, sections: tuple[tuple[str, tuple[str, ...]], ...] = (), **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sections = sections

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        records = {p.name: p.get_help_record(ctx) for p in self.get_params(ctx)}
        for title, names in self.sections:
            rows = [records.pop(name) for name in names if records.get(name)]
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
        rest = [record for record in records.values() if record]
        if rest:
            with formatter.section("Other options"):
                formatter.write_dl(rest)
