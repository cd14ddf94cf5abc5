"""The one place that turns a graphviz graph into files: svg (default), png, pdf or dot.

The ``.dot`` source is always written beside the picture, so a missing or
failing renderer never loses the drawing. The system Graphviz ``dot`` is
preferred; without it the ``graphviz-pure`` executable (a pip-installable
port with the same command line) renders svg and png, not pdf.

    >>> path, fmt = output_path("runs/x", None, "bptt")   # doctest: +SKIP
    >>> render(graph, path, fmt).picture                  # doctest: +SKIP
    PosixPath('runs/x/bptt.svg')
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmprof.errors import UsageError
from lmprof.fsutil import write_bytes_atomic, write_text_atomic
from lmprof.views.diagram_formats import FORMATS, PURE_FORMATS

INSTALL_HINT = ("install Graphviz (apt install graphviz, brew install graphviz, conda install graphviz) "
                "or `pip install graphviz-pure` for svg and png (installed with `pip --target DIR`, its "
                "executable is DIR/bin/graphviz-pure: keep DIR on PYTHONPATH, or put DIR/bin on PATH)")
PURE = "graphviz-pure"
RENDER_TIMEOUT_S = 120


@dataclass
class Rendered:
    picture: Path  # the .dot itself for --format dot
    dot: Path
    renderer: str | None  # the executable's name, or None for dot


def which(name: str) -> str | None:
    """An executable on PATH, or in this Python's scripts folder (a venv that is not activated)."""
    found = shutil.which(name)
    if found:
        return found
    scripts = Path(sysconfig.get_path("scripts")) / name
    return str(scripts) if scripts.is_file() and os.access(scripts, os.X_OK) else None


def pure_renderer() -> str | None:
    """graphviz-pure's executable: on PATH, in the scripts folder, or where pip put it beside the package.

    ``pip install --target DIR`` puts the package's metadata in DIR and its executable in DIR/bin, a
    folder on neither PATH nor the scripts path; DIR itself is on PYTHONPATH, so the installed
    distribution (or the graphviz module installed beside it) says where DIR is.
    """
    found = which(PURE)
    if found:
        return found
    from importlib import metadata, util

    places: list[Path] = []
    try:
        dist = metadata.distribution(PURE)
        places += [Path(str(dist.locate_file(f))) for f in dist.files or [] if Path(str(f)).name == PURE]
        places.append(Path(str(dist.locate_file(""))) / "bin" / PURE)
    except metadata.PackageNotFoundError:
        pass
    graphviz = util.find_spec("graphviz")
    if graphviz is not None and graphviz.origin:
        places.append(Path(graphviz.origin).parents[1] / "bin" / PURE)
    return next((str(p) for p in places if p.is_file() and os.access(p, os.X_OK)), None)


def find_renderer(fmt: str) -> str | None:
    """The executable that renders ``fmt``: the system ``dot`` first, else graphviz-pure (svg, png)."""
    system = which("dot")
    if system:
        return system
    return pure_renderer() if fmt in PURE_FORMATS else None


def output_path(out: str | None, fmt: str | None, stem: str, folder: str | Path = ".") -> tuple[Path, str]:
    """Where the picture goes and in which format, from --out and --format.

    --out may name a file (its suffix gives the format when --format is not
    given) or a folder (the picture is ``<folder>/<stem>.<format>``); without
    it the picture is ``<folder>/<stem>.<format>``.
    """
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if out is None or out.endswith(("/", os.sep)) or Path(out).is_dir():
        chosen = fmt or "svg"
        return Path(out or folder) / f"{stem}.{chosen}", chosen
    path = Path(out)
    suffix = path.suffix.lstrip(".").lower()
    if suffix in FORMATS:
        if fmt is not None and fmt != suffix:
            raise UsageError(f"--out {out} ends in .{suffix} but --format is {fmt}: make them agree")
        return path, suffix
    chosen = fmt or "svg"
    return path.with_name(f"{path.name}.{chosen}"), chosen


def render(graph: Any, picture: Path, fmt: str) -> Rendered:
    """Write ``<picture stem>.dot``, then the picture in ``fmt`` (svg, png, pdf; dot: the source only).

    ``graph`` is a ``graphviz.Digraph`` (or anything with ``.source``, or the source text).
    Raises UsageError, with the .dot kept, when no renderer here can make ``fmt``.
    """
    source = graph if isinstance(graph, str) else str(graph.source)
    dot_path = picture.with_suffix(".dot")
    try:
        write_text_atomic(dot_path, source)
    except OSError as e:
        raise UsageError(f"cannot write {dot_path}: {e.strerror}: choose another --out") from None
    if fmt == "dot":
        return Rendered(dot_path, dot_path, None)
    exe = find_renderer(fmt)
    if exe is None:
        if fmt == "pdf" and pure_renderer():
            raise UsageError(f"pdf needs the system Graphviz `dot` (graphviz-pure renders svg and png only): "
                             f"install Graphviz, or use --format svg or png; the source is in {dot_path}")
        raise UsageError(f"no Graphviz renderer found to make {fmt}: {INSTALL_HINT}; "
                         f"the source is in {dot_path}")
    try:
        done = subprocess.run([exe, f"-T{fmt}", str(dot_path)], capture_output=True, timeout=RENDER_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UsageError(f"{Path(exe).name} could not render {dot_path} ({e}); {INSTALL_HINT}") from None
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise UsageError(f"{Path(exe).name} failed on {dot_path}: {message[-1] if message else 'no output'}")
    write_bytes_atomic(picture, done.stdout)
    return Rendered(picture, dot_path, Path(exe).name)
