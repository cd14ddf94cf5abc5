"""run(): one run folder per run, partial results kept on Ctrl-C, markers silent when nobody listens."""

from __future__ import annotations

import json

import pytest

from lmprof import RunConfig, RunResult, run
from lmprof.errors import UsageError
from lmprof.instrument.base import Instrument
from lmprof.phases import PHASE_NAMES, phase


class InterruptAt(Instrument):
    """Presses Ctrl-C when the loop enters a phase for the n-th time."""

    def __init__(self, name: str, n: int) -> None:
        self.name_, self.n, self.seen = name, n, 0

    def recorder(self) -> "InterruptAt":
        return self

    def enter(self, name: str) -> None:
        if name == self.name_:
            self.seen += 1
            if self.seen == self.n:
                raise KeyboardInterrupt

    def exit(self, name: str) -> None:
        return None


def tiny(tiny_corpus, **kw) -> RunConfig:
    values = {"data": str(tiny_corpus), "emsize": 16, "nhid": 16, "bptt": 8, "max_batches": 4, "epochs": 3}
    return RunConfig(**{**values, **kw})


def test_ctrl_c_in_training_keeps_finished_epochs_and_still_tests(tiny_corpus, tmp_path) -> None:
    lines: list[str] = []
    # batch 2 of epoch 2: epoch 1 is done, epoch 2 is cut short
    result = run(tiny(tiny_corpus), instruments=[InterruptAt("data", 6)], log=lines.append, run_dir=tmp_path)
    assert result.status == "interrupted" and len(result.epochs) == 1
    assert "Exiting from training early" in lines and result.metrics["test_ppl"] > 1
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk["metrics"]["status"] == "interrupted" and len(on_disk["metrics"]["epochs"]) == 1


def test_ctrl_c_outside_training_still_leaves_a_valid_result(tiny_corpus, tmp_path) -> None:
    with pytest.raises(KeyboardInterrupt):
        run(tiny(tiny_corpus), instruments=[InterruptAt("evaluate_test", 1)], log=lambda s: None, run_dir=tmp_path)
    saved = RunResult.load(tmp_path)
    assert saved.status == "interrupted" and len(saved.epochs) == 3


def test_result_round_trips_and_refuses_newer_schema(tiny_corpus, tmp_path) -> None:
    result = run(tiny(tiny_corpus, epochs=1), log=lambda s: None, run_dir=tmp_path)
    again = RunResult.load(tmp_path)
    assert again.metrics == json.loads(json.dumps(result.metrics)) and again.run_dir == str(tmp_path)
    doc = json.loads((tmp_path / "result.json").read_text())
    doc["schema_version"] = 99
    (tmp_path / "result.json").write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="newer"):
        RunResult.load(tmp_path)
    with pytest.raises(UsageError, match="not a run folder"):
        RunResult.load(tmp_path / "nothing-here")


def test_older_result_loads_with_defaults(tmp_path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({"config": {"model": "GRU"}, "metrics": {"status": "ok"}}))
    old = RunResult.load(tmp_path)
    assert old.config["model"] == "GRU" and old.phases == [] and old.lines == {}


def test_markers_are_one_shared_no_op_when_nobody_listens() -> None:
    assert phase("forward") is phase("backward")  # no allocation per call
    assert len(set(PHASE_NAMES)) == len(PHASE_NAMES)


def test_default_run_folder_name(tiny_corpus, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(tiny(tiny_corpus, epochs=1, model="GRU"), command="train", log=lambda s: None)
    assert result.run_dir.startswith("runs/train-GRU-") and (tmp_path / result.run_dir / "result.json").is_file()
