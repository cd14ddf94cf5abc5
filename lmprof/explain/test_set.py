"""test_set: why a held-out test set, evaluated once, with the checkpoint validation picked.

The live part trains a small LSTM for a few short epochs with the reference
loop itself (``lmprof.runner.run``, in a temporary folder), so the epochs,
the saved checkpoints, the annealed learning rate and the one test
evaluation are upstream's own, not a re-enactment.
"""

from __future__ import annotations

import tempfile
from typing import Any

from rich.console import RenderableType

from lmprof.config import RunConfig
from lmprof.explain import TOPICS
from lmprof.explain.page import excerpt, number, page, prose, section, table
from lmprof.reference.loop import main

# Small enough to train in a few seconds on a laptop's CPU, large enough that
# validation perplexity moves from epoch to epoch; dropout 0 with one layer.
DEMO = RunConfig(model="LSTM", emsize=32, nhid=32, nlayers=1, dropout=0.0, lr=20.0, epochs=4, max_batches=25)


def demo(data: str | None = None, device: Any = None, epochs: int = DEMO.epochs,
         max_batches: int = DEMO.max_batches or 25) -> dict[str, Any]:
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
        improved = best is None or e["val_loss"] < best["val_loss"]
        if improved:
            best = e
        rows.append({"epoch": e["epoch"], "lr": e["lr"], "val_ppl": e["val_ppl"], "saved": improved})
    assert best is not None
    return {
        "data": "embedded corpus" if data is None else data,
        "config": {"model": cfg.model, "emsize": cfg.emsize, "nhid": cfg.nhid, "epochs": cfg.epochs,
                   "max_batches": cfg.max_batches, "lr": cfg.lr},
        "epochs": rows,
        "best_epoch": best["epoch"],
        "best_val_ppl": best["val_ppl"],
        "last_val_ppl": rows[-1]["val_ppl"],
        "test_ppl": result.metrics["test_ppl"],
        "valid_evaluations": evaluations.count("valid"),
        "test_evaluations": evaluations.count("test"),
        "status": result.metrics["status"],
    }


def render(numbers: dict[str, Any]) -> RenderableType:
    c = numbers["config"]
    gap = numbers["test_ppl"] / numbers["best_val_ppl"] - 1
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
              [(str(r["epoch"]), f"{r['lr']:g}", number(r["val_ppl"]),
                "saved (best so far)" if r["saved"] else "kept the earlier one; lr / 4")
               for r in numbers["epochs"]], right=["epoch", "lr", "val ppl"]),
        prose(f"""
            The loop evaluated validation {numbers['valid_evaluations']} time(s) and test
            {numbers['test_evaluations']} time(s). The checkpoint it loaded for the test is epoch
            {numbers['best_epoch']}'s ({'the last one' if last_best else 'not the last one: later epochs were worse'}),
            with validation perplexity {number(numbers['best_val_ppl'])}; its test perplexity is
            **{number(numbers['test_ppl'])}**, {relation} that.
        """),
        section("Why not report the validation number?"),
        prose("""
            Every decision above (which epoch to keep, when to lower the learning rate, and in a
            sweep which nhid or bptt to prefer) was made by *looking at* validation perplexity.
            The number you selected by being smallest is, on average, a little lucky: part of
            what made it the smallest is noise in that particular text. The test set took no part
            in any decision, so its perplexity is an unbiased estimate of how the chosen model
            does on text it has never seen. On one small run the gap can have either sign; over
            many choices (a sweep's grid) the best validation number drifts below what the same
            models score on fresh text.

            Evaluating it **once** keeps it that way: a test set read after every epoch, or used
            to pick between sweep runs, becomes a second validation set, and then no number is
            left that was not chosen by looking. That is why upstream's `main.py` loads the best
            checkpoint and evaluates `test_data` exactly once, after the training loop.
        """),
    )
