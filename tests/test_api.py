"""The Python API: keywords checked as the command line checks its flags; results display themselves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lmprof
from lmprof import api
from lmprof.cli import main
from lmprof.magic import magic_argv


def _cli_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_a_misspelt_flag_raises_the_command_lines_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError) as raised:
        lmprof.train(modle="GRU")
    assert "--modle" in str(raised.value) and "--model" in str(raised.value)
    assert str(raised.value) == _cli_line(capsys, ["train", "--modle", "GRU"])


def test_a_wrong_value_raises_the_command_lines_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError) as raised:
        lmprof.train(model="GRUU")
    assert str(raised.value) == _cli_line(capsys, ["train", "--model", "GRUU"])
    assert "GRU" in str(raised.value)


@pytest.mark.parametrize("call, keywords, argv", [
    ("train", {"epochs": "abc"}, ["train", "--epochs", "abc"]),  # a value its type cannot read
    ("train", {"device": "tpu"}, ["train", "--device", "tpu"]),  # outside the choices, with a suggestion
    ("train", {"tide": True}, ["train", "--tide"]),  # an unknown on/off flag
    ("profile", {"fn": ["trian"]}, ["profile", "--fn", "trian"]),  # a command's own repeatable option
    ("trace", {"row_limit": 0}, ["trace", "--row-limit", "0"]),
    ("sweep", {"save": "model.pt"}, ["sweep", "--save", "model.pt"]),
    ("bptt", {"model": "GRUU"}, ["diagram", "bptt", "--model", "GRUU"]),  # a subcommand's parser
    ("bptt", {"bptt": 100, "nlayers": 2}, ["diagram", "bptt", "--bptt", "100", "--nlayers", "2"]),
    ("flow", {"run": "a", "profile": True}, ["diagram", "flow", "--from", "a", "--profile"]),  # exclusive options
])
def test_every_face_says_the_same_line(call: str, keywords: dict[str, object], argv: list[str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    function = {"bptt": lmprof.diagram.bptt, "flow": lmprof.diagram.flow}.get(call) or getattr(lmprof, call)
    with pytest.raises(ValueError) as raised:
        function(**keywords)
    assert str(raised.value) == _cli_line(capsys, argv)


def test_sweep_factors_are_read_as_vary_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError) as raised:
        lmprof.sweep(models=["LSTM"], vary={"nhidd": [32, 64]})
    assert str(raised.value) == _cli_line(capsys, ["sweep", "--vary", "nhidd=32,64"])


def test_the_api_calls_the_library_not_the_command_line() -> None:
    source = (Path(lmprof.__file__).parent / "api.py").read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert not {m for m in imported if m and (m == "lmprof.cli" or m.startswith("lmprof.commands"))}
    assert "argparse" not in source and "argv" not in source


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
        magic_argv("   ")


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


def test_trace_and_sweep_from_python(tiny_corpus: Path, tmp_path: Path) -> None:
    flags = dict(data=str(tiny_corpus), emsize=8, nhid=8, bptt=4, threads=1)
    run = lmprof.trace(**flags, wait=0, warmup=1, active=1, out=str(tmp_path / "trace"))
    assert run.status == "ok" and run.ops and run.epochs[0]["batches"] == 2  # the schedule's steps
    grid = lmprof.sweep(models=["LSTM"], vary={"nhid": [8, 12]}, **flags, epochs=1, max_batches=2,
                        out=str(tmp_path / "sweep"))
    assert grid.folder == tmp_path / "sweep" and (grid.folder / "summary.csv").is_file()
    assert "<table" in grid._repr_html_()
