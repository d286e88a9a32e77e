"""``--threads`` on every command that runs a model: validated, applied, recorded as provenance."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from bench.cli import main

MODEL_COMMANDS = ("run", "score", "analyze", "judge", "hyperfit")


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_every_model_command_takes_threads(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "--threads" in result.output


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_zero_threads_is_one_line(command, tmp_path):
    result = CliRunner().invoke(main, [command, "--threads", "0", *(["x", "y"] if command == "judge" else [])])
    assert result.exit_code == 2 and "--threads" in result.output and "at least 1" in result.output
    assert "Traceback" not in result.output


def test_threads_are_applied_and_recorded_but_not_identity(stories260k, data_dir, tmp_path):
    common = ["run", "--model", stories260k, "--decoder", "greedy", "--num-prompts", "2", "--max-new-tokens", "4",
              "--data-dir", data_dir, "--out", str(tmp_path / "runs")]
    first = CliRunner().invoke(main, [*common, "--threads", "2"])
    assert first.exit_code == 0, first.output
    assert torch.get_num_threads() == 2  # the conftest fixture puts back the session's count afterwards
    second = CliRunner().invoke(main, [*common, "--threads", "1"])
    assert second.exit_code == 0 and "0 records generated" in second.output, second.output
    headers = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/header.json")]
    assert len(headers) == 1 and headers[0]["threads"] == 2
