"""How a data object shows itself in a notebook, without the data floor importing the views.

``RunResult`` and ``Comparison`` sit below ``lmprof.views``, so their
``_repr_html_`` cannot import a view. ``lmprof.views.notebook`` registers its
renderers here when it is imported (``lmprof.api`` and ``lmprof.RunResult``
import it); before that, ``html`` answers None and IPython shows the plain repr.
"""

from __future__ import annotations

from typing import Any, Callable

_RENDERERS: dict[type, Callable[[Any], str]] = {}


def register_html(cls: type, render: Callable[[Any], str]) -> None:
    """``render(obj)`` is what an instance of ``cls`` shows in a notebook cell."""
    _RENDERERS[cls] = render


def html(obj: Any) -> str | None:
    """``obj``'s notebook HTML, or None when no view registered one for its class."""
    render = _RENDERERS.get(type(obj))
    return render(obj) if render is not None else None
