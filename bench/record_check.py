"""The check every record of a run store passes when it is read."""

from __future__ import annotations

from typing import Any

from bench.errors import BenchError


def check_record(record: dict[str, Any], run_id: str, where: str) -> None:
    """One line naming ``where`` (file and line) unless ``record`` is a whole record of run ``run_id``.

    A record of another run (a file copied or concatenated by hand) or a partial one (``{}``) would
    otherwise be counted and scored as this run's.
    """
    problem = None
    if record.get("run_id") != run_id:
        problem = (f"belongs to run {str(record['run_id'])[:40]!r}, not {run_id}" if "run_id" in record
                   else "is not a complete record (it has no run_id)")
    elif not isinstance(record.get("prompt_id"), str):
        problem = "has no prompt_id"
    elif type(record.get("sample_index")) is not int or record["sample_index"] < 0:
        problem = "has no valid sample_index"
    elif not isinstance(record.get("continuation"), str):
        problem = "has no continuation text"
    elif record.get("token_ids") is not None and not (
            isinstance(record["token_ids"], list) and all(type(t) is int for t in record["token_ids"])):
        problem = "has token_ids that are not a list of integers"
    if problem:
        raise BenchError(f"{where}: this record {problem}; the file was edited or corrupted")
