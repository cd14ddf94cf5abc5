"""speedlab: each variant trains, the exact ones equal the reference, the ladder's rows, views and CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lmprof.config import RunConfig
from lmprof.experiments.speedlab.ladder import (HELPS, HURTS, NO_GAIN, REFERENCE, Ladder, Plan, Row, best_set, judge,
                                    loss_agreement, run_ladder, run_trial)
from lmprof.experiments.speedlab.variants import BY_NAME, VARIANTS, adaptive_cutoffs, thread_candidates

ROW_FIELDS = ("name", "tokens_per_s", "speedup", "speedup_range", "speedup_interval", "gflops", "share_of_peak",
              "val_ppl", "ppl_diff", "losses", "max_loss_diff", "time_to_quality", "time_to_quality_speedup",
              "verdict", "verdict_line")


@pytest.fixture(scope="module")
def small(tiny_corpus: Path) -> tuple[RunConfig, object, Plan]:
    import torch

    from lmprof.reference.data import Corpus

    # on the CPU wherever run: the exact variants' "bitwise equal" and the CUDA-only skips are the CPU's
    # (on CUDA, foreach's fused norm adds in another order); test_cuda.py runs the CUDA variants
    cfg = RunConfig(data=str(tiny_corpus), emsize=16, nhid=16, bptt=8, device="cpu")
    per_batch = cfg.bptt * cfg.batch_size
    plan = Plan(budget_tokens=4 * per_batch, budget_batches=4, eval_every_tokens=2 * per_batch, overtime=1.0,
                repeats=1)
    torch.set_num_threads(1)
    return cfg, Corpus(str(tiny_corpus)), plan


def _trial(small: tuple[RunConfig, object, Plan], *names: str) -> object:
    import torch

    cfg, corpus, plan = small
    return run_trial(cfg, torch.device("cpu"), corpus, [BY_NAME[n] for n in names], plan, None)


@pytest.fixture(scope="module")
def reference_trial(small: tuple[RunConfig, object, Plan]) -> object:
    return _trial(small)


@pytest.mark.parametrize("name", [v.name for v in VARIANTS if not v.cuda_only])
def test_each_cpu_variant_trains_with_finite_losses(small, name: str) -> None:
    import torch

    from lmprof.experiments.speedlab.probe import probe, skip_line

    cfg, corpus, _ = small
    unable = probe(cfg, torch.device("cpu"), len(corpus.dictionary), corpus.train, BY_NAME[name])
    if unable:  # bf16 on a CPU without AVX512-BF16/AMX: oneDNN has no bf16 LSTM; the ladder skips it so
        assert "\n" not in unable and "raised" in unable
        pytest.skip(skip_line(unable, torch.device("cpu")))
    trial = _trial(small, name)
    assert trial.status == "ok"
    assert len(trial.losses) == trial.budget_batches >= 2
    assert all(math.isfinite(x) for x in trial.losses)
    assert trial.budget_ppl is not None and math.isfinite(trial.budget_ppl)


def test_reference_trial_equals_the_reference_train(small, reference_trial) -> None:
    """The ladder's reference is the reference train() itself: same losses as calling it by hand."""
    import torch
    import torch.nn as nn

    from lmprof.reference.loop import batchify, build_model, train

    cfg, corpus, plan = small
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, len(corpus.dictionary), torch.device("cpu"))
    losses: list[float] = []

    def criterion(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = nn.NLLLoss()(output, targets)
        losses.append(loss.item())
        return loss

    train(model, batchify(corpus.train, cfg.batch_size), cfg.replace(max_batches=4), criterion,  # type: ignore[arg-type]
          len(corpus.dictionary), lr=cfg.lr, epoch=1, log=lambda line: None)
    assert reference_trial.losses == losses


@pytest.mark.parametrize("name", ["foreach", "set-to-none"])
def test_exact_variants_are_bitwise_equal(small, reference_trial, name: str) -> None:
    trial = _trial(small, name)
    assert trial.losses == reference_trial.losses
    assert loss_agreement(reference_trial.losses, trial.losses) == ("bitwise equal", 0.0)


def test_fused_loss_within_1e5(small, reference_trial) -> None:
    trial = _trial(small, "fused-loss")
    assert max(abs(a - b) for a, b in zip(trial.losses, reference_trial.losses)) <= 1e-5


def test_batch_variant_doubles_batch_and_scales_lr_by_sqrt2(small) -> None:
    trial = _trial(small, "batch")
    cfg, _, plan = small
    assert trial.cfg.batch_size == 2 * cfg.batch_size and trial.cfg.lr == pytest.approx(cfg.lr * math.sqrt(2))
    assert sum(trial.batch_tokens[:trial.budget_batches]) == plan.budget_tokens  # same tokens, half the steps


def test_adaptive_softmax_has_no_full_decoder(small) -> None:
    import torch

    from lmprof.experiments.speedlab.variants import build_setup

    cfg, corpus, _ = small
    setup = build_setup(cfg, torch.device("cpu"), len(corpus.dictionary), corpus.train, corpus.valid,
                        [BY_NAME["adaptive-softmax"]])
    from lmprof.reference.loop import build_model

    names = [n for n, _ in setup.model.named_parameters()]
    assert not any("decoder" in n for n in names) and any(n.startswith("head.") for n in names)
    reference = build_model(cfg, len(corpus.dictionary), torch.device("cpu"))
    assert sum(p.numel() for p in setup.model.parameters()) < sum(p.numel() for p in reference.parameters())
    assert int(torch.bincount(setup.train_ids)[0]) == int(torch.bincount(corpus.train).max())  # id 0: most frequent
    assert adaptive_cutoffs(33278) == [1997, 9983]


def test_speedlab_never_changes_the_reference_code(small) -> None:
    import lmprof.reference.loop as loop
    import lmprof.reference.model as model

    functions = {name: getattr(loop, name) for name in ("train", "evaluate", "get_batch", "batchify",
                                                         "repackage_hidden", "build_model")}
    codes = {name: fn.__code__ for name, fn in functions.items()}
    forward = model.RNNModel.forward.__code__
    cfg, _, _ = small
    run_ladder(cfg, variants=["foreach", "fused-loss", "bf16", "compile", "threads"], budget_batches=2,
               repeats=1, eval_every=1, combine=False)
    for name, fn in functions.items():
        assert getattr(loop, name) is fn and fn.__code__ is codes[name], name
    assert model.RNNModel.forward.__code__ is forward


def test_ladder_json_has_one_row_per_variant(small) -> None:
    cfg, _, _ = small
    ladder = run_ladder(cfg, variants=["foreach", "set-to-none", "fused-loss", "tf32"], budget_batches=4,
                        repeats=2, eval_every=2, combine=False)
    data = json.loads(ladder.to_json())
    assert data["format"] == "lmprof.speedlab/1"
    rows = {r["name"]: r for r in data["rows"]}
    assert list(rows) == [REFERENCE, "foreach", "set-to-none", "fused-loss", "tf32"]
    for name in (REFERENCE, "foreach", "set-to-none", "fused-loss"):
        for key in ROW_FIELDS:
            assert key in rows[name], (name, key)
        assert rows[name]["tokens_per_s"] > 0 and rows[name]["repeats"] == 2
        assert set(rows[name]["gflops"]) == {"forward", "backward"}
    assert rows["foreach"]["losses"] == "bitwise equal" and rows["foreach"]["ppl_diff"] == 0.0
    assert rows[REFERENCE]["val_ppl"] == pytest.approx(data["target_ppl"])
    assert rows["tf32"]["status"] == "skipped" and "CUDA only" in rows["tf32"]["reason"]
    assert Ladder.from_dict(data).row("foreach").losses == "bitwise equal"  # round trip


# --- pure logic, hand-made rows --------------------------------------------------------------
def _row(name: str, ttq_speedup: float | None, speed_verdict: str = "faster", members: list[str] | None = None) -> Row:
    row = Row(name, "", "", members or [name], "measured", speedup=1.5, speed_verdict=speed_verdict, ppl_diff=3.0,
              losses="changed", time_to_quality_speedup=ttq_speedup, time_to_quality=1.0 if ttq_speedup else None)
    row.verdict, row.verdict_line = judge(row, 0.15, 2.0)
    return row


def test_judge_calls_time_to_quality_not_speed() -> None:
    assert _row("bf16", 1.5).verdict == HELPS
    learns_less = _row("batch", 0.7)
    assert learns_less.verdict == HURTS and "learns less per token" in learns_less.verdict_line
    assert _row("foreach", 1.05, "within noise").verdict == NO_GAIN
    never = _row("compile", None)
    assert never.verdict == HURTS and "never reaches" in never.verdict_line


def test_best_set_takes_helpers_best_first_and_skips_conflicts() -> None:
    rows = [_row("fused-loss", 1.2), _row("adaptive-softmax", 3.0), _row("bf16", 1.4), _row("batch", 0.7)]
    assert best_set(rows) == ["adaptive-softmax", "bf16"]  # fused-loss conflicts with the adaptive head


def test_skip_reasons() -> None:
    import torch

    cpu = torch.device("cpu")
    assert "CUDA only" in BY_NAME["compile-reduce-overhead"].skip_reason(RunConfig(), cpu)
    assert BY_NAME["cuda-graph"].skip_reason(RunConfig(), cpu).startswith("CUDA only: a CUDA graph replays")
    assert "AdamW" in BY_NAME["cuda-graph"].skip_reason(RunConfig(use_optimizer=True), torch.device("cuda"))
    assert BY_NAME["adaptive-softmax"].skip_reason(RunConfig(tied=True), cpu)
    assert BY_NAME["bf16"].skip_reason(RunConfig(model="Transformer"), cpu)
    assert BY_NAME["foreach"].skip_reason(RunConfig(), cpu) == ""
    assert thread_candidates(16) == [1, 8, 16] and thread_candidates(1) == [1]


# --- views and the command ---------------------------------------------------------------------
def _hand_ladder() -> Ladder:
    ref = Row(REFERENCE, "the reference", "", [], "measured", batch_size=20, lr=20.0, tokens_per_s=1000.0,
              speedup=1.0, val_ppl=300.0, ppl_diff=0.0, losses="bitwise equal", time_to_quality=10.0,
              time_to_quality_speedup=1.0, verdict="baseline", verdict_line="baseline", speed_verdict="baseline",
              gflops={"forward": 50.0}, share_of_peak={"forward": 0.25})
    rows = [ref, _row("bf16", 2.0), _row("batch", 0.5),
            Row("tf32", "", "", ["tf32"], "skipped", "CUDA only: this run's device is cpu", verdict="skipped",
                verdict_line="skipped: CUDA only")]
    rows[1].val_ppl, rows[1].tokens_per_s = 303.0, 1500.0
    return Ladder(config=RunConfig().to_dict(), environment={"cpu": "Test CPU", "threads": 2, "torch": "2.13.0"},
                  budget_tokens=70000, budget_batches=100, eval_every_batches=10, valid_tokens=4000, repeats=3,
                  overtime=2.0, target_ppl=300.0, peak={"gflops": 200.0}, rows=rows)


def test_terminal_view_has_every_row_and_a_verdict_line() -> None:
    import io

    from rich.console import Console

    from lmprof.views.speedlab import ladder_view

    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(ladder_view(_hand_ladder()))
    text = out.getvalue()
    assert "50 (25%)" in text  # forward GFLOP/s and its share of the peak
    assert "bf16" in text and "helps: reaches the reference's ppl 2.00x sooner" in text
    assert "learns less per token" in text and "skipped: CUDA only" in text
    assert "+3.00" in text  # Δ ppl


def test_page_embeds_figures_as_images(tmp_path: Path) -> None:
    from lmprof.views.speedlab import speedlab_html

    page = speedlab_html(_hand_ladder())
    assert page.count('src="data:image/svg+xml;base64,') == 2
    assert "<svg" not in page  # never inlined markup
    assert 'data-grid="speed"' in page and 'data-grid="quality"' in page and "Square" not in page


def test_cli_json_and_folders_that_compare_opens(tiny_corpus: Path, tmp_path: Path, capsys) -> None:
    from lmprof.cli import main

    out = tmp_path / "lab"
    code = main(["speedlab", "--data", str(tiny_corpus), "--emsize", "16", "--nhid", "16", "--bptt", "8",
                 "--budget-batches", "3", "--repeats", "1", "--eval-every", "1", "--variants", "foreach",
                 "--out", str(out), "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in data["rows"]] == [REFERENCE, "foreach"]
    assert (out / "speedlab.html").is_file() and (out / "ladder.json").is_file()
    assert main(["compare", str(out / REFERENCE), str(out / "foreach"), "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in compared["phases"]][:2] == ["forward", "backward"]


def test_cli_unknown_variant_is_one_line(tiny_corpus: Path, tmp_path: Path, capsys) -> None:
    from lmprof.cli import main

    code = main(["speedlab", "--data", str(tiny_corpus), "--variants", "foreach,fp8", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown variant 'fp8'" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()  # refused before anything was made


def test_overtime_trains_on_until_the_target_or_the_limit(small) -> None:
    import torch

    cfg, corpus, plan = small
    longer = Plan(plan.budget_tokens, plan.budget_batches, plan.eval_every_tokens, overtime=2.0, repeats=1)
    never = run_trial(cfg, torch.device("cpu"), corpus, [], longer, target_ppl=1.0)  # a ppl no model reaches
    assert len(never.batch_ends) == 2 * never.budget_batches and never.time_to_quality is None
    assert len(never.losses) == never.budget_batches  # losses and budget ppl stay the budget's
    assert never.budget_ppl == next(c["val_ppl"] for c in never.checkpoints if c["tokens"] == plan.budget_tokens)
    easy = run_trial(cfg, torch.device("cpu"), corpus, [], longer, target_ppl=1e9)  # reached at the first check
    assert len(easy.batch_ends) == easy.budget_batches  # no overtime once reached
    assert easy.time_to_quality == easy.checkpoints[0]["seconds"]


def test_an_interrupted_ladder_keeps_the_finished_trainings(small, monkeypatch) -> None:
    import lmprof.experiments.speedlab.ladder as ladder

    real, calls = ladder.run_trial, []

    def stop_at_the_third(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 3:  # reference and foreach finished; Ctrl-C during set-to-none
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ladder, "run_trial", stop_at_the_third)
    cfg, _, _ = small
    lab = ladder.run_ladder(cfg, variants=["foreach", "set-to-none"], budget_batches=2, repeats=2, eval_every=1)
    assert lab.interrupted and [r.name for r in lab.rows] == [REFERENCE, "foreach"]
    assert lab.row("foreach").repeats == 1 and lab.row("foreach").losses == "bitwise equal"
    assert "interrupted" in lab.notes[0]


# --- issue 26 case 9: a variant this machine cannot run is skipped; one that fails later is a row ----------
def _raising_variant(monkeypatch, name: str, *, after_calls: int) -> None:
    """A variant whose model raises at its (after_calls + 1)-th forward: at the probe when after_calls is 0."""
    import torch.nn as nn

    import lmprof.experiments.speedlab.ladder as ladder
    from lmprof.experiments.speedlab.variants import Variant

    calls = {"n": 0}

    class Breaks(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] > after_calls:
                raise RuntimeError("could not create a primitive descriptor for the LSTM forward propagation "
                                   "primitive. Run workload with environment variable ONEDNN_VERBOSE=all")
            return self.inner(*args)

        def init_hidden(self, bsz: int):  # type: ignore[no-untyped-def]
            return self.inner.init_hidden(bsz)

    def apply(setup) -> None:  # type: ignore[no-untyped-def]
        setup.model = Breaks(setup.model)
        setup.eval_model = setup.model

    variant = Variant(name, "breaks", "a test's variant that raises", "changed", apply=apply)
    monkeypatch.setitem(BY_NAME, name, variant)
    monkeypatch.setattr(ladder, "VARIANTS", (*VARIANTS, variant))


def test_a_variant_that_raises_at_its_first_step_is_skipped_with_one_line(small, monkeypatch) -> None:
    _raising_variant(monkeypatch, "no-bf16-here", after_calls=0)
    cfg, _, _ = small
    lab = run_ladder(cfg, variants=["foreach", "no-bf16-here"], budget_batches=2, repeats=1, eval_every=1,
                     combine=False, floor=False)
    row = lab.row("no-bf16-here")
    assert row.status == "skipped" and row.verdict == "skipped"
    assert row.verdict_line == ("skipped on this CPU: one tiny step raised RuntimeError: could not create a "
                                "primitive descriptor for the LSTM forward propagation primitive")
    assert lab.row("foreach").status == "measured"  # the rest of the ladder is measured


def test_a_variant_that_fails_mid_ladder_is_a_failed_row_not_a_lost_ladder(small, monkeypatch, tmp_path) -> None:
    _raising_variant(monkeypatch, "breaks-later", after_calls=3)  # past the probe, fails during training
    cfg, _, _ = small
    lab = run_ladder(cfg, variants=["foreach", "breaks-later"], budget_batches=3, repeats=2, eval_every=1,
                     combine=False, floor=False)
    row = lab.row("breaks-later")
    assert row.status == "failed" and row.verdict_line.startswith("failed: RuntimeError: could not create")
    assert lab.row("foreach").repeats == 2 and not lab.interrupted
    data = json.loads(lab.to_json())  # the JSON and the views carry the failed row
    assert next(r for r in data["rows"] if r["name"] == "breaks-later")["status"] == "failed"
    from lmprof.views.speedlab import speedlab_html

    assert "failed: RuntimeError" in speedlab_html(lab)


# --- issue 31: cuda-graph on a CPU, the floor, the time budget -----------------------------------------
def test_cuda_graph_is_skipped_on_a_cpu_and_the_floor_is_the_operators(small) -> None:
    cfg, _, _ = small
    lab = run_ladder(cfg, variants=["foreach", "cuda-graph"], budget_batches=3, repeats=1, eval_every=1,
                     combine=False)
    row = json.loads(lab.to_json())["rows"][-1]
    assert row["name"] == "cuda-graph" and row["status"] == "skipped" and "CUDA only" in row["reason"]
    assert lab.floor["kind"] == "operator" and lab.floor["seconds"] > 0 and lab.floor["steps"] >= 1
    reference = lab.row(REFERENCE)
    # the reference's own time per token over its operators' self time: at least the operators' work
    assert reference.floor_ratio is not None and 0.5 < reference.floor_ratio < 20
    from lmprof.views.speedlab import floor_line

    assert floor_line(lab).startswith("operator floor: ") and "analogue of kernel time" in floor_line(lab)


def test_budget_seconds_sets_the_tokens_from_the_references_training(small) -> None:
    cfg, _, _ = small
    lab = run_ladder(cfg, variants=["foreach"], budget_seconds=0.05, repeats=2, eval_every=1, combine=False,
                     floor=False)
    assert lab.budget_seconds == 0.05 and lab.budget_batches >= 1
    first = lab.trials[REFERENCE][0]
    assert lab.budget_tokens == sum(first.batch_tokens[:lab.budget_batches])  # (an epoch's last batch is short)
    assert first.batch_ends[lab.budget_batches - 1] >= 0.05  # trained until the time was spent
    assert lab.budget_batches == 1 or first.batch_ends[lab.budget_batches - 2] < 0.05
    for trials in lab.trials.values():  # every later training: the same tokens
        assert all(sum(t.batch_tokens[:t.budget_batches]) == lab.budget_tokens for t in trials)
    assert lab.row("foreach").losses == "bitwise equal"
    from lmprof.experiments.speedlab.ladder import TIMED_CHECKS

    checks = [len(t.checkpoints) for t in lab.trials["foreach"]]  # after the first training: a coarser grid
    assert all(n <= TIMED_CHECKS + 1 for n in checks)


def test_the_controls_run_only_when_named() -> None:
    from lmprof.experiments.speedlab.ladder import choose

    assert "cudnn-off" not in [v.name for v in choose(None)]
    assert [v.name for v in choose(["cudnn-off"])] == ["cudnn-off"]


def test_cli_budget_seconds_is_checked_in_one_line(tiny_corpus: Path, tmp_path: Path, capsys) -> None:
    from lmprof.cli import main

    code = main(["speedlab", "--data", str(tiny_corpus), "--budget-seconds", "-1", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "--budget-seconds must be a positive number" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_the_trial_clock_leaves_evaluations_out_of_training_seconds() -> None:
    from lmprof.experiments.speedlab.trial import TrialClock

    ticks, syncs = iter([10.0, 11.0, 11.5, 13.0, 14.0]), []
    clock = TrialClock(lambda: syncs.append(1), clock=lambda: next(ticks))
    clock.start()  # 10.0
    assert clock.lap() == 1.0  # 11.0: one second of training
    clock.leave_out_since_lap()  # 11.5: half a second evaluating
    assert clock.lap() == 2.5  # 13.0: three seconds since the start, half of one left out
    assert clock.lap() == 3.5  # 14.0: a lap without an evaluation leaves nothing out
    assert len(syncs) == 4  # the start and every lap wait for the device first

