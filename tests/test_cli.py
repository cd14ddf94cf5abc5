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
