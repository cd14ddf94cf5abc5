"""views/ops.py: the FLOP/s lines and the trace hint, from result.json's numbers."""

from __future__ import annotations

from pathlib import Path

from lmprof.result import RunResult
from lmprof.views.ops import flops_lines, flops_text, trace_hint


def test_flops_lines_round_and_name_the_peak(profile_result: RunResult) -> None:
    profile_result.flops = {
        "phases": [{"name": "forward", "gflops_per_s": 132.4, "share_of_peak": 0.6},
                   {"name": "backward", "gflops_per_s": 3.14159, "share_of_peak": None}],
        "peak": {"gflops": 220.0, "size": 1024, "device": "cpu", "threads": 2, "cached": True},
        "step_flops": {"forward": 2.99e9, "backward": 5.97e9}}
    assert flops_lines(profile_result) == ["forward: 132 GFLOP/s, 60% of this machine's matmul peak",
                                           "backward: 3.1 GFLOP/s"]
    text = flops_text(profile_result)
    assert "peak: 220 GFLOP/s, float32 1024x1024 matmul on cpu, 2 thread(s), from the cache" in text
    assert "forward 2.99 GFLOP, backward 5.97 GFLOP" in text


def test_no_flops_no_text(empty_result: RunResult) -> None:
    assert flops_lines(empty_result) == [] and flops_text(empty_result) == ""


def test_trace_hint_names_the_first_trace_file(profile_result: RunResult, tmp_path: Path) -> None:
    assert trace_hint(profile_result).startswith("no trace was written")
    profile_result.run_dir = str(tmp_path)
    profile_result.ops = {"trace_dir": "trace", "trace_files": ["host_1.pt.trace.json"]}
    hint = trace_hint(profile_result)
    assert f"tensorboard --logdir {tmp_path / 'trace'}" in hint
    assert str(tmp_path / "trace" / "host_1.pt.trace.json") in hint
