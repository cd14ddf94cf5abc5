"""RunResult: result.json round-trips, older files load, newer and damaged ones are one clear line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lmprof.errors import UsageError
from lmprof.record.result import RESULT_FILE, SCHEMA_VERSION, RunResult


def test_round_trip_keeps_every_section(profile_result: RunResult, tmp_path: Path) -> None:
    profile_result.sweep = {"run": "LSTM nhid=16", "key": "abc", "vocab_size": 10, "epochs": [{"epoch": 1}]}
    profile_result.save(tmp_path)
    again = RunResult.load(tmp_path)
    assert again.run_dir == str(tmp_path)
    for section in ("config", "environment", "metrics", "phases", "lines", "ops", "sweep"):
        assert getattr(again, section) == getattr(profile_result, section), section


def test_not_finite_numbers_are_stored_as_null(tmp_path: Path) -> None:
    RunResult(config={"model": "LSTM"}, metrics={"test_ppl": math.inf, "test_loss": math.nan}).save(tmp_path)
    doc = json.loads((tmp_path / RESULT_FILE).read_text())
    assert doc["metrics"] == {"test_ppl": None, "test_loss": None}


def test_a_version_1_file_without_the_newer_sections_loads(tmp_path: Path) -> None:
    (tmp_path / RESULT_FILE).write_text(json.dumps({
        "schema_version": 1, "command": "train", "config": {"model": "GRU", "nhid": 32, "extra": {}},
        "metrics": {"status": "ok", "epochs": [{"epoch": 1, "val_ppl": 300.0}]}}))
    result = RunResult.load(tmp_path)
    assert result.schema_version == SCHEMA_VERSION and result.config["model"] == "GRU"
    assert result.epochs[0]["val_ppl"] == 300.0 and result.sweep == {} and result.memory == {}


def test_a_newer_file_asks_for_an_upgrade(tmp_path: Path) -> None:
    (tmp_path / RESULT_FILE).write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1, "config": {}}))
    with pytest.raises(UsageError, match="upgrade lmprof"):
        RunResult.load(tmp_path)


@pytest.mark.parametrize(("text", "words"), [
    ("{not json", "is not a valid result.json"), ('{"metrics": {}}', "no config section"),
    ('{"config": {}, "metrics": {"epochs": "many"}}', "is damaged"),
    ('{"config": {}, "sweep": {"run": 3}}', "is damaged"),
])
def test_damaged_files_are_one_line(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / RESULT_FILE).write_text(text)
    with pytest.raises(UsageError, match=words):
        RunResult.load(tmp_path)


def test_a_folder_without_a_result(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a run folder"):
        RunResult.load(tmp_path)
