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


# --- the checker, built from lmprof.record.sections: every section, the newest included ---------------------
BAD_VALUES = [
    ("phase_summary", {"train_coverage": "bad"}, "phase_summary.train_coverage must be a number"),
    ("flops", {"phases": [{"name": "forward", "gflops_per_s": "fast"}]}, "flops.phases[0].gflops_per_s"),
    ("components", {"rows": [{"name": "rnn", "forward_seconds": -1.0, "backward_seconds": 0.0}]},
     "components.rows[0].forward_seconds"),
    ("memory", {"saved_bytes_peak": "1 MB"}, "memory.saved_bytes_peak"),
    ("gradients", {"epochs": [{"epoch": 1, "clipped_fraction": "all"}]}, "gradients.epochs[0].clipped_fraction"),
    ("overhead", {"ratio": "1.3x"}, "overhead.ratio must be a number"),
    ("backward_lines", {"lines": [{"line": 3, "bwd_seconds": None}]}, "backward_lines.lines[0].bwd_seconds"),
    ("metrics", {"epochs": [{"epoch": 1, "train_seconds": -2.0}]}, "metrics.epochs[0].train_seconds"),
]


@pytest.mark.parametrize("section,value,said", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_a_bad_value_in_any_section_is_one_line(tmp_path: Path, section: str, value: dict, said: str) -> None:
    (tmp_path / RESULT_FILE).write_text(json.dumps({"config": {"model": "LSTM"}, section: value}))
    with pytest.raises(UsageError) as caught:
        RunResult.load(tmp_path)
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_show_says_a_string_coverage_in_one_line_exit_2(profile_result: RunResult, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from lmprof.cli import main

    profile_result.save(tmp_path)
    doc = json.loads((tmp_path / RESULT_FILE).read_text())
    doc["phase_summary"]["train_coverage"] = "bad"
    (tmp_path / RESULT_FILE).write_text(json.dumps(doc))
    assert main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "phase_summary.train_coverage must be a number" in err and "Traceback" not in err


def test_the_strict_check_refuses_a_key_no_section_defines(profile_result: RunResult) -> None:
    from lmprof.record.check import check_document

    doc = json.loads(profile_result.to_json())
    assert check_document(doc, strict=True) is None
    doc["phase_summary"]["coverage"] = 0.9  # the name the old docs used; the writer writes train_coverage
    assert check_document(doc) is None
    assert check_document(doc, strict=True) == (
        "phase_summary has 'coverage', a field lmprof.record.sections does not define")


def test_every_key_constant_names_a_field_of_a_section() -> None:
    import typing

    from lmprof.record import sections

    fields = set()
    for value in vars(sections).values():
        if typing.is_typeddict(value):
            fields |= set(typing.get_type_hints(value))
    constants = {name: value for name, value in vars(sections).items()
                 if name.isupper() and isinstance(value, str)}
    assert {name for name, value in constants.items() if value not in fields} == set()
