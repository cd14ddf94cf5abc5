"""The run record: the run folder's contract (its files, its sections, their keys), and the objects read from it.

The floor under every writer (the runner, the instruments, the sweeps) and every reader
(the views, the comparison, the classroom): both import the same names from here.

    files.py          every file name in a run folder; OWN_FILES (what --force removes) derived from them
    sections.py       each section of result.json as a TypedDict, its key names as constants
    check.py          the checker built from the sections (strict in the tests); the caps on what is read
    result.py         RunResult: result.json saved and loaded (through the checker)
    derived.py        what views and compare both read (run description, component rows, step time, cost
                      line) and the row builders writers share (epoch_record, phase_row)
    epochs.py         the runner's listener that keeps each epoch's record
    sweep_summary.py  a sweep folder read into one summary
"""
