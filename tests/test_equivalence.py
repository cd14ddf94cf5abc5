"""lmprof's un-instrumented loop reproduces the upstream program's figures on wikitext-2-lite."""

from __future__ import annotations

import pytest

from lmprof.cli import main

from .conftest import SHARED_DATA


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "train.txt").is_file(), reason="../shared/data/wikitext-2-lite not beside the project")
def test_wikitext2_lite_one_epoch_prints_upstreams_figures(tmp_path, capsys) -> None:
    assert main(["train", "--data", str(SHARED_DATA), "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    # the data README: valid loss 6.43 (ppl 619.75), test loss 6.40 (ppl 604.45), 310 batches
    assert "|   200/  310 batches | lr 20.00 |" in out
    assert "| valid loss  6.43 | valid ppl   619.75" in out
    assert "| End of training | test loss  6.40 | test ppl   604.45" in out
