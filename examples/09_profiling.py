"""Walkthrough 9: time a short run by phase and read the shares.

Run:   python examples/09_profiling.py             (the page: lmprof explain profiling)
Then:  lmprof profile --fn train                   (line tables and the phase table of a real run)
Try:   bptt 70 or nhid 128: which phase grows fastest?
"""

from __future__ import annotations

import tempfile

from lmprof import RunConfig, run
from lmprof.corpora import synth
from lmprof.instrument.recorders import PhaseInstrument


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        corpus = synth.write(f"{folder}/corpus", sizes={"train": 20_000, "valid": 1_000, "test": 1_000})
        cfg = RunConfig(data=str(corpus), epochs=1, max_batches=20, emsize=64, nhid=64, device="cpu")
        result = run(cfg, command="example", instruments=[PhaseInstrument()], log=lambda line: None,
                     run_dir=f"{folder}/run")
    print(f"{cfg.model}, nhid {cfg.nhid}, {cfg.max_batches} batches, clock: {result.phase_summary['clock']}")
    print(f"{'phase':<36}{'calls':>6}{'ms':>10}{'share':>8}")
    for row in result.phases:
        print(f"{row['label']:<36}{row['calls'] or '':>6}{row['seconds'] * 1e3:>10.1f}{row['share']:>8.1%}")


if __name__ == "__main__":
    main()
