"""The speed lab (``lmprof speedlab``): its options, the checks before anything trains, the ladder and its files.

The ladder's page (speedlab.html) and table are views; this module writes
ladder.json and one result.json per variant, which ``lmprof compare`` opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from lmprof.errors import UsageError
from lmprof.experiments.speedlab import ladder as lab
from lmprof.library.options import Option, config_from_values, flag_option, run_options

if TYPE_CHECKING:
    from lmprof.experiments.speedlab.rows import Ladder

LADDER_FILE = "ladder.json"


def _variant_names() -> str:
    from lmprof.experiments.speedlab.variants import VARIANTS

    return ", ".join(v.name for v in VARIANTS)


LAB = "speedlab"
SPEEDLAB_OPTIONS = (
    Option("variants", "variants to measure, comma-separated (default: all that apply to the device): "
                       + _variant_names(), metavar="A,B,...", group=LAB),
    Option("budget_batches", "training budget in the reference's batches (default 100 on a CPU)", type=int,
           metavar="N", group=LAB, exclusive="budget"),
    Option("budget_seconds", "training budget in seconds: the reference trains S seconds, and the tokens it saw are "
                             f"every variant's budget (default on CUDA: {lab.GPU_BUDGET_SECONDS:g})", type=float,
           metavar="S", group=LAB, exclusive="budget"),
    Option("budget_tokens", "training budget in tokens", type=int, metavar="N", group=LAB, exclusive="budget"),
    Option("repeats", f"times each is trained, interleaved (default {lab.REPEATS}; {lab.GPU_REPEATS} on CUDA with "
                      "the time budget)", type=int, metavar="K", group=LAB),
    Option("eval_every", f"quality check every M reference batches' worth of tokens (default {lab.EVAL_EVERY})",
           type=int, default=lab.EVAL_EVERY, metavar="M", group=LAB),
    Option("valid_tokens", f"the validation slice every variant is judged on (default {lab.VALID_TOKENS})", type=int,
           default=lab.VALID_TOKENS, metavar="N", group=LAB),
    Option("overtime", "a variant short of the reference's ppl at the budget trains on up to F x the budget "
                       f"(default {lab.OVERTIME:g})", type=float, default=lab.OVERTIME, metavar="F", group=LAB),
    flag_option("no_combine", "skip the round that combines the variants that helped", group=LAB),
    flag_option("json", "print the ladder as JSON on standard output", group=LAB),
    *run_options(epochs=1),
)


@dataclass
class SpeedlabRun:
    ladder: "Ladder"
    folder: Path


def speedlab_from(values: Mapping[str, Any], *, progress: Callable[[str], None]) -> SpeedlabRun:
    """Check the options, run the ladder, write ladder.json and each variant's result.json into the run folder."""
    from lmprof.fsutil import write_text_atomic
    from lmprof.runner import default_run_dir, prepare_run_dir

    cfg = config_from_values(values)
    names = _check(values, cfg)
    folder = prepare_run_dir(cfg.out or default_run_dir("speedlab", cfg), force=values["force"])
    ladder = lab.run_ladder(cfg, variants=names, budget_batches=values["budget_batches"],
                            budget_tokens=values["budget_tokens"], budget_seconds=values["budget_seconds"],
                            repeats=values["repeats"], eval_every=values["eval_every"],
                            valid_tokens=values["valid_tokens"], overtime=values["overtime"],
                            combine=not values["no_combine"], progress=progress)
    write_text_atomic(folder / LADDER_FILE, ladder.to_json() + "\n")
    for name, result in lab.run_results(ladder).items():
        result.save(folder / name)
    return SpeedlabRun(ladder, folder)


def _check(values: Mapping[str, Any], cfg: Any) -> list[str] | None:
    """The variants named (None: all), every option checked before anything is made or trained."""
    if values["max_batches"] or values["dry_run"]:  # the budget decides how long each variant trains
        raise UsageError("speedlab trains each variant for --budget-batches or --budget-tokens; "
                         "--max-batches and --dry-run do not apply here")
    names = [n.strip() for n in values["variants"].split(",") if n.strip()] if values["variants"] else None
    lab.choose(names)  # an unknown name fails before anything trains
    repeats = values["repeats"] if values["repeats"] is not None else 1  # None: the device decides (run_ladder)
    lab.check_options(cfg, repeats, values["eval_every"], values["valid_tokens"], values["overtime"])
    for flag, value in (("--budget-batches", values["budget_batches"]), ("--budget-tokens", values["budget_tokens"])):
        if value is not None and value <= 0:
            raise UsageError(f"{flag} must be a positive integer, got {value}")
    seconds = values["budget_seconds"]
    if seconds is not None and not (0 < seconds < 10 ** 6):  # also refuses nan, inf
        raise UsageError(f"--budget-seconds must be a positive number of seconds, got {seconds:g}")
    return names
