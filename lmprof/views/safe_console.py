"""A rich Console through which no string from a file drives the terminal or breaks the markup.

Every view gets a folder's strings already made visible when the folder is read
(``lmprof.safe_files.visible``); this console is the last guard, for the command
line and for the pages that embed rich output (``views.html.rich_html``).
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def safe_console_class() -> type:
    """A rich Console through which no string drives the terminal.

    Every view already gets a folder's strings made visible when the folder is read
    (``lmprof.safe_files.visible``); this is the last guard, for whatever reaches print
    another way (a folder's name, a message): control characters in printed text are
    written as escapes (rich's own cursor and style codes are separate segments and pass),
    and in markup only style tags act: a ``[link=...]`` or ``[@...]`` tag is shown as
    text, and markup that does not parse is printed as it is instead of raising.
    """
    import re

    from rich.console import Console
    from rich.errors import MarkupError
    from rich.segment import Segment

    from lmprof.safe_files import visible

    acting_tag = re.compile(r"(?<!\\)\[(?=(?:/?link|@|[^\]]*=))")

    class SafeConsole(Console):
        def render_str(self, text: str, **options: Any) -> Any:
            if options.get("markup") is False or (options.get("markup") is None and not self._markup):
                return super().render_str(text, **options)
            try:
                return super().render_str(acting_tag.sub(r"\\[", text), **options)
            except MarkupError:
                return super().render_str(text, **{**options, "markup": False})

        def _render_buffer(self, buffer: Any) -> str:
            return str(super()._render_buffer(
                segment if segment.control else Segment(visible(segment.text), segment.style, segment.control)
                for segment in buffer))

    return SafeConsole
