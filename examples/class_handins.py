"""The instructor's side of a class: collect hand-in bundles, run `lmprof class`, read the cohorts and flags.

Run:   python examples/class_handins.py          (seconds: five tiny real runs, each packed)
Try:   open handins/class.html (the dashboard); add your own run: lmprof pack runs/<yours> --out handins/me.zip
       and run the printed `lmprof class` command again.

Five "students" train the assignment's tiny LSTM for one epoch on a small
corpus; each hands in `lmprof pack RUN` (a zip of JSON: the run's record,
its line tables, this machine's calibration). Three of them got something
wrong, as students do: one raised the learning rate to 2000, one trained a
bigger model than asked, one stopped after 5 batches and called it an epoch.
`lmprof class` reads the folder of bundles and says which, with evidence.
"""

from __future__ import annotations

from pathlib import Path

import lmprof
from lmprof.cli import main
from lmprof.corpora import synth

ASSIGNMENT = {"model": "LSTM", "emsize": 16, "nhid": 16, "nlayers": 2, "epochs": 1, "bptt": 8, "seed": 1111}
STUDENTS = {  # name -> what they changed (nothing: the assignment as given)
    "ada": {}, "ben": {}, "chen": {"lr": 2000.0}, "dana": {"nhid": 48}, "eli": {"max_batches": 5},
}


def main_lesson(folder: Path = Path(".")) -> None:
    corpus = synth.write(folder / "class-corpus", seed=0, sizes={"train": 3000, "valid": 600, "test": 600})
    handins = folder / "handins"
    handins.mkdir(exist_ok=True)
    for name, changed in STUDENTS.items():
        flags = {**ASSIGNMENT, **changed, "data": str(corpus), "threads": 2, "out": str(folder / "runs" / name),
                 "force": True}
        run = lmprof.profile(fn=["train"], **flags)  # the student's machine
        lmprof.pack(run, handins / f"{name}.zip")  # what they hand in
    expect = folder / "assignment.toml"
    expect.write_text("".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in ASSIGNMENT.items()))
    command = ["class", str(handins), "--expect", str(expect), "--report", str(handins / "class.html"),
               "--csv", str(handins / "class.csv")]
    print("$ lmprof " + " ".join(command) + "\n")
    main(command)


if __name__ == "__main__":
    main_lesson()
