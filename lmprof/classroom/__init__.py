"""A class of runs: hand-in bundles (``lmprof pack``) and the view over a whole class (``lmprof class``).

    bundle.py     pack a run folder into one JSON-and-text zip; read a stranger's bundle in memory, safely
    anonymize.py  host and user names and paths replaced by stable hashes (``pack --anonymize``)
    calibrate.py  this machine's environment, matmul peak and the time of one fixed tiny reference step
    cohorts.py    one row of measures per run, cohorts by device kind, quantiles and robust z-scores
    detectors.py  the misconceptions a profile gives away, each with one line of evidence per run
    summary.py    every bundle or folder given -> a ClassSummary (rows, cohorts, flags, refusals); CSV, JSON
"""
