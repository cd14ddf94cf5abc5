"""test_set: why a held-out test set, evaluated once, with the checkpoint validation picked.

The live part trains a small LSTM for a few short epochs with the reference
loop itself (``lmprof.runner.run``, in a temporary folder), so the epochs,
the saved checkpoints, the annealed learning rate and the one test
evaluation are upstream's own, not a re-enactment.

The selection effect is measured, not asserted: one model is trained on, with
a snapshot every few batches (close candidates, like upstream's epochs), then
many small "experiments" each draw a validation sample and a test sample of
text chunks, pick the snapshot with the lowest validation perplexity, and
record how far its test perplexity lands above its validation one, against
the same gap averaged over every snapshot. Picking the smallest of noisy numbers makes the picked one's
validation figure lucky; the draws show by how much, with their spread.
"""

from __future__ import annotations

import tempfile
from typing import Any

from rich.console import RenderableType

from lmprof.config import RunConfig
from lmprof.lessons import TOPICS
from lmprof.lessons.page import excerpt, number, page, prose, section, table
from lmprof.record.sections import TEST_PPL, VAL_LOSS, VAL_PPL
from lmprof.reference.loop import main

# Small enough to train in a few seconds on a laptop's CPU, large enough that
# validation perplexity moves from epoch to epoch; dropout 0 with one layer.
DEMO = RunConfig(model="LSTM", emsize=32, nhid=32, nlayers=1, dropout=0.0, lr=20.0, epochs=4, max_batches=25)
# The candidates of the selection demo: snapshots of one run, one every SNAPSHOT_EVERY batches.
SNAPSHOTS = 8
SNAPSHOT_EVERY = 5
SAMPLE_CHUNKS = 10  # text chunks (of bptt tokens) in one draw's validation sample, and in its test sample
SELECTION_DRAWS = 400


def demo(data: str | None = None, device: Any = None, epochs: int = DEMO.epochs,
         max_batches: int = DEMO.max_batches or 25, snapshots: int = SNAPSHOTS, every: int = SNAPSHOT_EVERY,
         draws: int = SELECTION_DRAWS) -> dict[str, Any]:
    """A short run of the reference loop: validation per epoch, which checkpoint is kept, one test."""
    from lmprof.runner import run

    cfg = DEMO.replace(data=data, epochs=epochs, max_batches=max_batches,
                       device="cpu" if device is None else str(getattr(device, "type", device)))
    evaluations: list[str] = []

    def count(line: str) -> None:  # the loop's own log lines say when each set was evaluated
        if "end of epoch" in line:
            evaluations.append("valid")
        elif "End of training" in line:
            evaluations.append("test")

    with tempfile.TemporaryDirectory(prefix="lmprof-test-set-") as folder:
        result = run(cfg, command="explain", log=count, run_dir=folder)
    best = None
    rows = []
    for e in result.metrics["epochs"]:
        improved = best is None or e[VAL_LOSS] < best[VAL_LOSS]
        if improved:
            best = e
        rows.append({"epoch": e["epoch"], "lr": e["lr"], VAL_PPL: e[VAL_PPL], "saved": improved})
    assert best is not None
    return {
        "data": "embedded corpus" if data is None else data,
        "config": {"model": cfg.model, "emsize": cfg.emsize, "nhid": cfg.nhid, "epochs": cfg.epochs,
                   "max_batches": cfg.max_batches, "lr": cfg.lr},
        "epochs": rows,
        "best_epoch": best["epoch"],
        "best_val_ppl": best[VAL_PPL],
        "last_val_ppl": rows[-1][VAL_PPL],
        TEST_PPL: result.metrics[TEST_PPL],
        "valid_evaluations": evaluations.count("valid"),
        "test_evaluations": evaluations.count("test"),
        "status": result.metrics["status"],
        "selection": selection(cfg, snapshots, every, draws),
    }


def chunk_losses(model: Any, source: Any, bptt: int) -> list[float]:
    """Mean loss of every full chunk of ``bptt`` tokens of each column of ``source`` (batchified), in eval mode,
    the hidden state carried along as ``evaluate`` does."""
    import torch
    import torch.nn.functional as F

    from lmprof.reference.loop import get_batch, repackage_hidden

    model.eval()
    hidden = model.init_hidden(source.size(1))
    out: list[float] = []
    with torch.no_grad():
        for i in range(0, source.size(0) - 1, bptt):
            data, targets = get_batch(source, i, bptt)
            output, hidden = model(data, hidden)
            hidden = repackage_hidden(hidden)
            if len(data) == bptt:  # equal chunks: each draw's mean weighs them alike
                per_token = F.nll_loss(output, targets, reduction="none").view(len(data), -1)
                out += per_token.mean(dim=0).tolist()
    return out


def selection(base: RunConfig, snapshots: int, every: int, draws: int) -> dict[str, Any]:
    """Train one model with the reference ``train`` on consecutive slices of the corpus, keeping a snapshot
    every ``every`` batches after a warm-up; then ``draws`` times: pick the snapshot with the lowest
    validation perplexity on a random sample of validation chunks, and compare its test / validation
    gap with every snapshot's. Late snapshots of one run are close in quality: the candidates upstream's
    "keep the best epoch" chooses among."""
    val, tst, kept = snapshot_losses(base, snapshots, every)
    if len(kept) < 2 or val.ndim < 2 or min(val.shape[1], tst.shape[1]) < 4:
        return {}  # too little text for the draws: the page leaves the part out
    return selection_draws(val, tst, kept, draws, base.bptt)


def snapshot_losses(base: RunConfig, snapshots: int, every: int) -> tuple[Any, Any, list[int]]:
    """Per-chunk validation and test losses of each snapshot (arrays: snapshots x chunks), and the batches
    trained at each. The model is the run's own (its seed, the reference's build), on the CPU."""
    import numpy as np
    import torch.nn as nn

    from lmprof.prepare import prepare
    from lmprof.reference.loop import train

    prepared = prepare(base.replace(device="cpu"))
    valid = prepared.batches("valid", base.eval_batch_size)
    test = prepared.batches("test", base.eval_batch_size)
    train_data = prepared.batches("train", base.batch_size)
    model = prepared.model()
    cfg = base.replace(max_batches=None)
    warm = max(1, base.max_batches or 1)  # the demo's own training length before the first snapshot
    val_chunks, test_chunks, kept = [], [], []
    start, trained = 0, 0
    while len(kept) < snapshots:
        n = warm if trained == 0 else every
        if start + n * base.bptt + 1 > train_data.size(0):
            break  # a short corpus: fewer snapshots
        window = train_data[start:start + n * base.bptt + 1]
        trained += train(model, window, cfg, nn.NLLLoss(), prepared.ntokens, lr=base.lr, epoch=1,
                         log=lambda line: None)
        start += n * base.bptt
        val_chunks.append(chunk_losses(model, valid, base.bptt))
        test_chunks.append(chunk_losses(model, test, base.bptt))
        kept.append(trained)
    return np.asarray(val_chunks), np.asarray(test_chunks), kept


def selection_draws(val: Any, tst: Any, kept: list[int], draws: int, bptt: int) -> dict[str, Any]:
    """``draws`` small experiments on the snapshots' chunk losses: validation picks, test scores the pick."""
    import numpy as np

    sample = min(SAMPLE_CHUNKS, val.shape[1], tst.shape[1])
    rng = np.random.default_rng(0)  # the same corpus and snapshots give the same draws
    chosen_gaps, mean_gaps, chosen_lucky, picked_best = [], [], 0, 0
    best = int(np.argmin(val.mean(axis=1)))  # the snapshot the whole validation file prefers
    for _ in range(draws):
        v = val[:, rng.choice(val.shape[1], sample, replace=False)].mean(axis=1)
        t = tst[:, rng.choice(tst.shape[1], sample, replace=False)].mean(axis=1)
        gaps = np.exp(t - v) - 1  # test ppl / validation ppl - 1, per snapshot
        pick = int(np.argmin(v))
        chosen_gaps.append(float(gaps[pick]))
        mean_gaps.append(float(gaps.mean()))
        chosen_lucky += gaps[pick] > gaps.mean()
        picked_best += pick == best

    def spread(values: list[float]) -> dict[str, float]:
        low, mid, high = np.percentile(values, [10, 50, 90])
        return {"median": float(mid), "p10": float(low), "p90": float(high), "mean": float(np.mean(values))}

    configs = [{"batches": b, VAL_PPL: float(np.exp(v.mean())), TEST_PPL: float(np.exp(t.mean()))}
               for b, v, t in zip(kept, val, tst)]
    return {"configs": configs, "draws": draws, "sample_chunks": sample, "chunk_tokens": bptt,
            "chunks": [int(val.shape[1]), int(tst.shape[1])], "chosen": spread(chosen_gaps),
            "every": spread(mean_gaps), "chosen_above_every": int(chosen_lucky), "picked_best": int(picked_best),
            "difference": spread([c - m for c, m in zip(chosen_gaps, mean_gaps)])}


def _selection_parts(sel: dict[str, Any]) -> list[RenderableType]:
    def pct(value: float) -> str:
        return f"{value:+.1%}"

    chosen, every, diff = sel["chosen"], sel["every"], sel["difference"]
    rows = [(name, pct(d["median"]), f"{pct(d['p10'])} to {pct(d['p90'])}") for name, d in
            (("the one validation chose", chosen), ("every snapshot (mean)", every),
             ("chosen minus mean", diff))]
    share = sel["chosen_above_every"] / sel["draws"]
    return [
        section(f"Live: choosing among {len(sel['configs'])} snapshots of one run by validation"),
        table("the candidates: one model after each number of batches (whole validation and test files)",
              ["batches trained", "val ppl", "test ppl"],
              [(str(c["batches"]), number(c[VAL_PPL]), number(c[TEST_PPL])) for c in sel["configs"]],
              right=["batches trained", "val ppl", "test ppl"]),
        table(f"test ppl ÷ validation ppl − 1, over {sel['draws']} draws of {sel['sample_chunks']} validation and "
              f"{sel['sample_chunks']} test chunks of {sel['chunk_tokens']} tokens",
              ["whose gap", "median", "10th to 90th percentile"], rows,
              right=["median", "10th to 90th percentile"]),
        prose(f"""
            Each draw is a small experiment: a validation sample picks the snapshot with the
            lowest perplexity (as upstream keeps its best epoch), and a test sample scores it. Measured now: the chosen snapshot's
            test perplexity landed a median {pct(chosen['median'])} from its validation figure,
            against {pct(every['median'])} for the average snapshot (which includes how the two
            files differ); the chosen one's gap was the larger in {share:.0%} of the
            {sel['draws']} draws. That difference, {pct(diff['median'])} in the median
            ({pct(diff['p10'])} to {pct(diff['p90'])}), is the selection effect: the validation
            number of whatever was picked for being smallest is {'too good' if diff['median'] > 0 else 'not too good here'}.
            Its size depends on how close the candidates are: the draws picked the snapshot the
            whole validation file prefers {sel['picked_best'] / sel['draws']:.0%} of the time, so
            {'the pick rarely changed and the effect stays small' if sel['picked_best'] > 0.8 * sel['draws']
             else 'noise often decided the pick'}. A finer grid (closer candidates) or a smaller
            validation set makes it larger; only a set that took no part in the choice measures it.
        """),
    ]


def render(numbers: dict[str, Any]) -> RenderableType:
    c = numbers["config"]
    gap = numbers[TEST_PPL] / numbers["best_val_ppl"] - 1
    relation = (f"{gap:.1%} above" if gap > 0.0005 else f"{-gap:.1%} below" if gap < -0.0005 else "level with")
    last_best = numbers["best_epoch"] == numbers["epochs"][-1]["epoch"]
    return page(
        "test_set", TOPICS["test_set"],
        section("Three sets, three jobs"),
        prose("""
            The corpus comes in three files. `train.txt` moves the weights. `valid.txt` is read after
            every epoch and **steers** training: the model is saved only when validation loss is the
            best so far, and the learning rate is divided by 4 when it is not. `test.txt` is read
            **once**, at the very end, by the checkpoint validation chose:
        """),
        excerpt(main, "Save the model if the validation loss", "lr /= 4.0"),
        excerpt(main, "Load the best saved model", "test ppl"),
        section(f"Live: {c['model']} {c['emsize']}/{c['nhid']}, {c['epochs']} epochs of {c['max_batches']} batches, "
                f"lr {c['lr']:g}, on the {numbers['data']}"),
        table(None, ["epoch", "lr", "val ppl", "checkpoint"],
              [(str(r["epoch"]), f"{r['lr']:g}", number(r[VAL_PPL]),
                "saved (best so far)" if r["saved"] else "kept the earlier one; lr / 4")
               for r in numbers["epochs"]], right=["epoch", "lr", "val ppl"]),
        prose(f"""
            The loop evaluated validation {numbers['valid_evaluations']} time(s) and test
            {numbers['test_evaluations']} time(s). The checkpoint it loaded for the test is epoch
            {numbers['best_epoch']}'s ({'the last one' if last_best else 'not the last one: later epochs were worse'}),
            with validation perplexity {number(numbers['best_val_ppl'])}; its test perplexity is
            **{number(numbers[TEST_PPL])}**, {relation} that.
        """),
        section("Why not report the validation number?"),
        prose("""
            Every decision above (which epoch to keep, when to lower the learning rate, and in a
            sweep which nhid or bptt to prefer) was made by *looking at* validation perplexity.
            The number you selected by being smallest is, on average, a little lucky: part of
            what made it the smallest is noise in that particular text. The test set took no part
            in any decision, so its perplexity is an unbiased estimate of how the chosen model
            does on text it has never seen. On one small run the gap can have either sign (the run
            above shows one); over many choices (a sweep's grid) the best validation number drifts
            below what the same models score on fresh text, as the draws below measure.

            Evaluating it **once** keeps it that way: a test set read after every epoch, or used
            to pick between sweep runs, becomes a second validation set, and then no number is
            left that was not chosen by looking. That is why upstream's `main.py` loads the best
            checkpoint and evaluates `test_data` exactly once, after the training loop.
        """),
        *(_selection_parts(numbers["selection"]) if numbers.get("selection") else []),
    )
