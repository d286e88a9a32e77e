"""Prompt-suite plugins. Importing this package registers the named suites.

``wikitext`` and ``cd-wikitext`` are registered here; JSONL prompt files (``--suite x.jsonl``)
are read by :mod:`suites.jsonl` and need no registration. See :mod:`bench.suite_loading` for how
``--suite`` values and ``--num-prompts`` subsets are resolved.
"""

from suites import cd_wikitext, jsonl, wikitext  # noqa: F401
