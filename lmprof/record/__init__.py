"""The run record: the run folder's contract (its files, its sections, their keys), and the objects read from it.

The floor under every writer (the runner, the instruments, the sweeps) and every reader
(the views, the comparison, the classroom): both import the same names from here.
"""
