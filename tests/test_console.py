"""The terminal side: the progress bar (lmprof.views.progress) follows the markers; piped log lines stay plain."""

from __future__ import annotations

import io

from rich.console import Console

from lmprof import RunConfig, run
from lmprof.commands.console import log_to
from lmprof.views.progress import StageProgress


def test_progress_bar_counts_each_epochs_batches(tiny_corpus, tmp_path) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    cfg = RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, bptt=8, max_batches=4, epochs=2)
    result = run(cfg, instruments=[StageProgress(console)], log=log_to(console), run_dir=tmp_path)
    text = out.getvalue()
    assert result.status == "ok"
    assert "epoch 1" in text and "epoch 2" in text and "4/4" in text
    assert "| end of epoch   2 |" in text


def test_piped_log_lines_are_printed_plain(capsys) -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    log_to(console)("| epoch   1 |    [bold]not markup[/bold]")
    assert capsys.readouterr().out == "| epoch   1 |    [bold]not markup[/bold]\n"
