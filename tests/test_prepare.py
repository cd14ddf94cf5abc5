"""prepare(cfg): the one set-up the runner, the speed lab, gradient flow, the sweep and the lessons share."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmprof.config import RunConfig
from lmprof.errors import UsageError
from lmprof.prepare import corpus_folder, prepare, read_corpus, seeded_model


def test_a_bad_flag_corpus_or_device_is_one_line_before_anything_is_built(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="^--emsize must be a positive integer, got 0$"):
        prepare(RunConfig(emsize=0))
    with pytest.raises(UsageError, match="does not exist"):
        prepare(RunConfig(data=str(tmp_path / "nowhere")))
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device is available here"):
            prepare(RunConfig(device="cuda"))


def test_prepared_run_sets_threads_and_reads_the_corpus_once() -> None:
    before = torch.get_num_threads()
    try:
        prepared = prepare(RunConfig(threads=1, device="cpu"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert prepared.device.type == "cpu" and prepared.data_path == corpus_folder(prepared.cfg.data, prepared.cfg.synth_seed)
    assert prepared.corpus() is prepared.corpus()  # read once
    assert prepared.ntokens == len(read_corpus().dictionary)  # the embedded corpus when --data is not given
    assert tuple(prepared.batches("train", 20).shape) == (prepared.size.train // 20, 20)


def test_the_model_is_upstreams_seed_then_build() -> None:
    from lmprof.reference.loop import build_model

    cfg = RunConfig(emsize=8, nhid=8, device="cpu")
    torch.manual_seed(cfg.seed)
    expected = build_model(cfg, 50, torch.device("cpu"))
    torch.manual_seed(cfg.seed + 1)  # whatever the stream was before, seeded_model seeds it
    got = seeded_model(cfg, 50, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(expected.state_dict().values(), got.state_dict().values()))
