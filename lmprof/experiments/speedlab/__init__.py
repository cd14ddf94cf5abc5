"""speedlab: well-known changes to the training step, measured against the faithful reference.

``variants`` holds each change as a small named object with its reason and
what it needs of the run (``models``: the rewired modules some variants train;
``graph_step``: the cuda-graph variant's captured step); ``probe`` tries each
with one tiny step first; ``floor`` measures the kernel floor; ``trial`` runs
one training (a clock that leaves evaluations out, stopped through the loop's
own ``max_batches``); ``ladder`` trains the reference (``lmprof.reference``,
unchanged) and each variant for the same token budget, interleaved and
repeated, and returns a ``Ladder`` (``rows``): plain data that
``lmprof.views.speedlab`` renders. Nothing here
edits or patches ``lmprof/reference/``: a variant hands the reference
``train()`` its own model, criterion or optimizer, or sets a context
(threads, autocast) around it.
"""
