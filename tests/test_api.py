"""The Python API: flags become the command line's arguments; results display themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

import lmprof
from lmprof import api
from lmprof.cli import main


def test_flags_are_spelt_as_the_command_line_spells_them() -> None:
    argv = api.to_argv(["profile"], {"fn": ["train", "evaluate"], "max_batches": 5, "batch_size": 10,
                                     "tied": True, "dry_run": False, "lr": 2.5})
    assert argv == ["profile", "--fn", "train", "--fn", "evaluate", "--max-batches", "5", "--batch_size", "10",
                    "--tied", "--lr", "2.5"]


def test_sweep_factors_become_vary_flags() -> None:
    argv = api.to_argv(["sweep"], {"models": ["LSTM", "GRU"], "vary": {"nhid": [32, 64], "bptt": 5}})
    assert argv == ["sweep", "--models", "LSTM", "GRU", "--vary", "nhid=32,64", "--vary", "bptt=5"]


def test_a_misspelt_flag_raises_the_command_lines_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError) as raised:
        lmprof.train(modle="GRU")
    assert "--modle" in str(raised.value) and "--model" in str(raised.value)
    main(["train", "--modle", "GRU"])
    assert str(raised.value) == capsys.readouterr().err.strip().splitlines()[-1]


def test_a_wrong_value_raises_the_command_lines_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError) as raised:
        lmprof.train(model="GRUU")
    assert main(["train", "--model", "GRUU"]) == 2
    assert str(raised.value) == capsys.readouterr().err.strip().splitlines()[-1]
    assert "GRU" in str(raised.value)


def test_api_names_stay_functions_after_their_subpackages_load() -> None:
    from lmprof.lessons import TOPICS  # imports the subpackage lmprof.lessons
    from lmprof.sweeps import load_rows  # noqa: F401  and lmprof.sweeps

    assert callable(lmprof.explain) and callable(lmprof.sweep) and "tied" in TOPICS
    with pytest.raises(ValueError, match="unknown topic"):
        lmprof.explain("nonsense")


def test_run_result_repr_is_short_and_its_html_is_the_reports_tables(profile_result: lmprof.RunResult) -> None:
    text = repr(profile_result)
    assert "\n" not in text and "profile" in text and "LSTM" in text and len(text) < 200
    html = profile_result._repr_html_()
    assert html.startswith('<div class="lmprof-nb">') and "<table" in html and "backward (BPTT)" in html
    assert "<script" not in html and "<html" not in html
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    rules = [rule.split("{")[0].strip() for rule in style.split("}") if "{" in rule]
    assert rules and all(r.startswith((".lmprof-nb", "@media")) for r in rules)  # nothing restyles the notebook


def test_empty_run_result_still_displays(empty_result: lmprof.RunResult) -> None:
    assert empty_result._repr_html_().startswith('<div class="lmprof-nb">')


def test_profile_load_and_diagrams_from_python(tiny_corpus: Path, tmp_path: Path) -> None:
    run = lmprof.profile(fn=["train"], data=str(tiny_corpus), emsize=16, nhid=16, epochs=1, max_batches=3,
                         bptt=8, out=str(tmp_path / "run"))
    assert run.status == "ok" and len(run.epochs) == 1 and run.epochs[0]["batches"] == 3
    again = lmprof.load(tmp_path / "run")
    assert again.metrics["test_ppl"] == run.metrics["test_ppl"]
    assert "<table" in again._repr_html_() and "forward" in again._repr_html_()
    flow = lmprof.diagram.flow(run)
    assert flow._repr_svg_().lstrip().startswith(("<?xml", "<svg", "<!DOCTYPE"))
    saved = flow.save(tmp_path / "flow.png")
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and saved.with_suffix(".dot").is_file()
    with pytest.raises(ValueError, match="not a run folder"):
        lmprof.load(tmp_path)


def test_bptt_diagram_is_svg() -> None:
    picture = lmprof.diagram.bptt(bptt=2, nlayers=1)
    assert "<svg" in picture._repr_svg_() and "step" in picture._repr_svg_()


def test_magic_registers_and_runs_the_command_line(tiny_corpus: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    registered = {}

    class FakeShell:
        def register_magic_function(self, fn, magic_kind: str, magic_name: str) -> None:
            registered[(magic_kind, magic_name)] = fn

    lmprof.load_ipython_extension(FakeShell())
    magic = registered[("line", "lmprof")]
    shown = magic(f"train --data {tiny_corpus} --emsize 16 --nhid 16 --max-batches 2 --bptt 8 "
                  f"--out '{tmp_path / 'a run'}'")
    assert isinstance(shown, lmprof.RunResult) and shown.epochs[0]["batches"] == 2
    assert isinstance(magic("explain tied"), api.Explanation)
    assert magic("train --batch_sise 3") is None  # a usage mistake: one line, no traceback
    assert "did you mean" in capsys.readouterr().out
    with pytest.raises(ValueError, match="usage: %lmprof"):
        api.magic_argv("   ")


def test_explanation_html_is_the_walkthrough() -> None:
    page = lmprof.explain("tied")._repr_html_()
    assert "tied" in page.lower() and "<pre" in page


def test_compare_from_python_displays_its_tables(tiny_corpus: Path, tmp_path: Path) -> None:
    flags = dict(data=str(tiny_corpus), emsize=16, nhid=16, epochs=1, max_batches=3, bptt=8)
    lstm = lmprof.profile(**flags, out=str(tmp_path / "lstm"))
    gru = lmprof.profile(**flags, model="GRU", out=str(tmp_path / "gru"))
    comparison = lmprof.compare(lstm, tmp_path / "gru")
    assert comparison.names == ["lstm", "gru"] and "lstm vs gru" in repr(comparison)
    html = comparison._repr_html_()
    assert html.startswith('<div class="lmprof-nb">') and "<table" in html and "GRU" in html
    with pytest.raises(ValueError, match="two or more"):
        lmprof.compare(gru)
