"""The file formats a diagram is written in: a leaf below the views and the library, so ``lmprof diagram --help``
lists them without loading the renderer, and a command's declared --format choices need no view."""

FORMATS = ("svg", "png", "pdf", "dot")
PURE_FORMATS = ("svg", "png")  # what graphviz-pure renders
