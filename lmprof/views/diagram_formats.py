"""The file formats a diagram is written in: a leaf, so ``lmprof diagram --help`` lists them without loading the renderer."""

from lmprof.picture_formats import FORMATS, PURE_FORMATS  # noqa: F401  (below the library, which declares --format)
