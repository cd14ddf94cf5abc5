"""Every file lmprof writes into a run folder, named once: writers and readers import these names.

A run folder (``runs/<name>/``) holds result.json and the files the
instruments and diagrams write beside it. ``OWN_FILES`` is what
``--force`` removes before a new run in the same folder, derived from the
names here so that a new file cannot be forgotten there.

    >>> RESULT_FILE
    'result.json'
    >>> "memory_snapshot.pickle" in OWN_FILES
    True
"""

from __future__ import annotations

RESULT_FILE = "result.json"  # the record of the run (lmprof.record.result.RunResult)
LINES_FILE = "lines.lprof"  # line_profiler's stats: `python -m line_profiler lines.lprof`
REPORT_FILE = "report.html"  # everything in one page (lmprof report RUN)
CHECKPOINT_FILE = "model.pt"  # the model the run saved (upstream's --save), unless --save names another path
TRACE_DIR = "trace"  # torch.profiler's TensorBoard traces (*.pt.trace.json)
TRACE_STAGING_DIR = ".trace-staging"  # beside trace/, not in it: the plugin scans trace/ recursively
MEMORY_SNAPSHOT_FILE = "memory_snapshot.pickle"  # the CUDA allocator's history (--memory-snapshot)
STOP_FILE = "stop-requested"  # a sweep driver's "stop this run as Ctrl-C would" (lmprof.sweeps.worker)

# Pictures: <stem>.svg / .png / .pdf and the Graphviz source <stem>.dot
FLOW_STEM = "flow"  # the component flow chart (lmprof diagram flow)
BPTT_STEM = "bptt"  # the unrolled BPTT graph (lmprof diagram bptt)
BPTT_RAW_STEM = "bptt-raw"  # the autograd graph as torch recorded it (lmprof diagram bptt --raw)
GRADFLOW_STEM = "gradflow"  # the gradient reaching back through time (lmprof gradflow)
PICTURE_STEMS = (FLOW_STEM, BPTT_STEM, BPTT_RAW_STEM, GRADFLOW_STEM)

# What lmprof writes into a run folder (names and glob patterns): --force removes these, and nothing else.
OWN_FILES = (RESULT_FILE, LINES_FILE, REPORT_FILE, CHECKPOINT_FILE, TRACE_DIR, TRACE_STAGING_DIR,
             MEMORY_SNAPSHOT_FILE, *(f"{stem}.*" for stem in PICTURE_STEMS),
             STOP_FILE)  # a stop request the run did not live to read
