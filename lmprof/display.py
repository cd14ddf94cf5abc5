"""How a data object shows itself in a notebook, without the data floor importing the views.

``RunResult`` and ``Comparison`` sit below ``lmprof.views``, so their
``_repr_html_`` cannot import a view. ``lmprof.views.notebook`` registers its
renderers here when it is imported (``lmprof.api`` and ``lmprof.RunResult``
import it); before that, ``html`` answers None and IPython shows the plain repr.
"""

from __future__ import annotations

from typing import Any, Callable

_RENDERERS: dict[type, Callable[[Any], str]] = {}
_TERMINAL: dict[type, Callable[[Any], Any]] = {}  # class -> its terminal tables (a rich renderable)
_CONSOLE: list[Callable[..., Any]] = []  # the Console class that prints them (the command line's)


def register_html(cls: type, render: Callable[[Any], str]) -> None:
    """``render(obj)`` is what an instance of ``cls`` shows in a notebook cell."""
    _RENDERERS[cls] = render


def html(obj: Any) -> str | None:
    """``obj``'s notebook HTML, or None when no view registered one for its class."""
    render = _RENDERERS.get(type(obj))
    return render(obj) if render is not None else None


def register_terminal(cls: type, render: Callable[[Any], Any], console_class: Callable[..., Any] | None = None) -> None:
    """``render(obj)`` is the rich renderable ``obj.show()`` prints (what the command line prints for it)."""
    _TERMINAL[cls] = render
    if console_class is not None:
        _CONSOLE[:] = [console_class]


def show(obj: Any, width: int | None = None, file: Any = None) -> None:
    """Print ``obj``'s terminal tables to ``file`` (default: stdout) at ``width`` (default: the terminal's)."""
    import sys

    render = _TERMINAL.get(type(obj))
    out = file or sys.stdout
    if render is None:  # no view imported yet (lmprof.record.result imported on its own)
        print(f"{obj!r}\n(import lmprof first: its views print the tables)", file=out)
        return
    if _CONSOLE:
        console = _CONSOLE[0](file=out, width=width, highlight=False, force_jupyter=False)
    else:
        from rich.console import Console

        console = Console(file=out, width=width, highlight=False, force_jupyter=False)
    console.print(render(obj))
