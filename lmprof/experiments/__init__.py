"""Experiments: measurements that run their own training steps beside the reference loop.

The speed lab (and its whole-step CUDA graph), the gradient flow through time and the
memory model. The instruments (``lmprof.instrument``) watch a run; these run something.
"""
