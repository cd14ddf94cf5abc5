"""What each command does, as functions that take a RunConfig (or plain arguments) and return result objects.

Two faces sit over this floor and neither calls the other: the command line
(``lmprof.cli`` and ``lmprof.commands``: parse, call, print with the views,
exit codes) and the Python API (``lmprof.api``: keywords checked, the same
calls, objects that display themselves). Each command's options are declared
once, as data, in the module of its function (``lmprof.library.options``
says how); the faces build argparse flags and keyword checks from them.

    runs.py      train, profile: the instruments a run gets, the run -> RunResult
    trace.py     trace (and trace --into RUN) under torch.profiler -> RunResult
    sweep.py     a grid of runs: plan, executor, the sweep folder, its summary
    diagram.py   what a drawing needs: the run behind a flow chart, the captured BPTT graph
    compare.py   two to six run folders -> a Comparison
    explain.py   a walkthrough's live demonstration, its numbers
    gradflow.py  the gradient reaching back through time -> the draws, the plot's folder
    speedlab.py  the ladder of speed-ups -> the Ladder, ladder.json and each variant's result.json
    compute.py   --device and --threads for what computes without training
    options.py   Option, the run's options from RunConfig, the keyword check and its messages

Nothing here imports a view, a command or the CLI; drawing and printing are the faces' part.
"""
