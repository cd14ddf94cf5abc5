"""The file formats a diagram is written in: a leaf, so ``lmprof diagram --help`` lists them without loading the renderer."""

FORMATS = ("svg", "png", "pdf", "dot")
PURE_FORMATS = ("svg", "png")  # what graphviz-pure renders
