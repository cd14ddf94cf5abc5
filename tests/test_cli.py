"""cli.main: callable in-process; a user's mistake is one line and exit status 2."""

from __future__ import annotations

from typing import Any

from lmprof.cli import COMMANDS, main
from lmprof.version import __version__


def test_version_and_help(capsys: Any) -> None:
    assert main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"lmprof {__version__}"
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_an_unknown_command_or_flag_is_exit_2(capsys: Any) -> None:
    assert main(["trian"]) == 2
    assert main(["train", "--nhidd", "3"]) == 2
    assert "unrecognized arguments: --nhidd" in capsys.readouterr().err


def test_a_usage_error_is_one_line_without_traceback(capsys: Any, tmp_path: Any) -> None:
    assert main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lmprof show: error:") and "Traceback" not in err and err.count("\n") == 1


def test_each_commands_flags_are_its_declared_options() -> None:
    """One declaration per option (lmprof.library): the parser's flags, defaults and choices are built from it."""
    import argparse

    from lmprof.cli import build_parser
    from lmprof.library.compare import COMPARE_OPTIONS
    from lmprof.library.diagram import BPTT_OPTIONS, FLOW_OPTIONS
    from lmprof.library.explain import EXPLAIN_OPTIONS
    from lmprof.library.gradflow import GRADFLOW_OPTIONS
    from lmprof.library.runs import PROFILE_OPTIONS, TRAIN_OPTIONS
    from lmprof.library.speedlab import SPEEDLAB_OPTIONS
    from lmprof.library.sweep import SWEEP_OPTIONS
    from lmprof.library.trace import TRACE_OPTIONS

    def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return sub.choices[name]

    top = build_parser()
    declared = {("train",): TRAIN_OPTIONS, ("profile",): PROFILE_OPTIONS, ("trace",): TRACE_OPTIONS,
                ("sweep",): SWEEP_OPTIONS, ("compare",): COMPARE_OPTIONS, ("explain",): EXPLAIN_OPTIONS,
                ("gradflow",): GRADFLOW_OPTIONS, ("speedlab",): SPEEDLAB_OPTIONS,
                ("diagram", "flow"): FLOW_OPTIONS, ("diagram", "bptt"): BPTT_OPTIONS}
    for path, options in declared.items():
        parser = top
        for name in path:
            parser = subparser(parser, name)
        flags = {a.option_strings[0]: a for a in parser._actions if a.option_strings and a.dest != "help"}
        assert sorted(flags) == sorted(o.spelling for o in options), path
        for option in options:
            action = flags[option.spelling]
            assert (action.dest, action.default, action.choices) == (option.name, option.default, option.choices)
