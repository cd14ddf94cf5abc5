"""An SVG made safe to inline in a report: a real allow-list of elements, attributes and values.

Run folders are handed around, so their SVG files are untrusted markup. The
file is parsed as XML and written out again keeping only drawing elements
(shapes, text, groups, gradients, clip paths) and presentation attributes;
references may only point inside the figure (``#id``, ``url(#id)``). Script,
event handlers, links, foreign content, styles that fetch and anything after
the ``<svg>`` element never reach the output. Ids are prefixed, so two figures
on one page never point into each other's definitions (graphviz and
matplotlib both number theirs from 1).

    >>> sanitize('<svg onload="alert(1)"><script>x</script><g id="a"/></svg>', "flow")
    '<svg role="img" class="figure" data-source="flow"><g id="flow-a"></g></svg>'
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
ELEMENTS = {"svg", "g", "path", "polygon", "polyline", "line", "rect", "circle", "ellipse", "text", "tspan",
            "title", "desc", "defs", "clipPath", "use", "linearGradient", "radialGradient", "stop", "symbol"}
UNWRAPPED = {"a", "switch"}  # the element goes, its drawing stays
ATTRIBUTES = {
    "id", "class", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "dx", "dy", "width", "height",
    "viewBox", "preserveAspectRatio", "d", "points", "transform", "fill", "fill-opacity", "fill-rule", "stroke",
    "stroke-width", "stroke-dasharray", "stroke-dashoffset", "stroke-opacity", "stroke-linecap", "stroke-linejoin",
    "stroke-miterlimit", "opacity", "font-family", "font-size", "font-weight", "font-style", "text-anchor",
    "dominant-baseline", "alignment-baseline", "letter-spacing", "clip-path", "clip-rule", "clipPathUnits",
    "offset", "stop-color", "stop-opacity", "gradientUnits", "gradientTransform", "fx", "fy", "style", "href",
    "version", "visibility", "display",
}
_LOCAL_URL = re.compile(r"url\(\s*#([\w.:-]+)\s*\)")
_UNSAFE_VALUE = re.compile(r"url\(|javascript:|vbscript:|expression\(|@import|[<>\\]|&#|data:", re.I)


class UnsafeSvg(ValueError):
    """The text is not an SVG this module can vouch for (not XML, not an <svg>, declares entities)."""


def sanitize(text: str, prefix: str) -> str:
    """``text`` (an SVG document) as an inline ``<svg>`` element holding only allow-listed drawing."""
    if "<!ENTITY" in text.upper():  # entity expansion is a way to blow up or smuggle; no drawing needs it
        raise UnsafeSvg("declares XML entities")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:  # e.g. HTML after the </svg>: not one XML document
        raise UnsafeSvg(str(e)) from None
    if _name(root) != "svg":
        raise UnsafeSvg(f"the root element is <{_name(root)}>, not <svg>")
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    attrs = f' role="img" class="figure" data-source="{html.escape(prefix)}"'
    return _element(root, prefix, ids, extra=attrs)


def _name(el: ET.Element) -> str:
    """The local name of an SVG element; '' for any other namespace (foreign content, metadata)."""
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return local if ns == SVG_NS else ""
    return tag


def _element(el: ET.Element, prefix: str, ids: set[str | None], extra: str = "") -> str:
    name = _name(el)
    inner = html.escape(el.text or "", quote=False) + "".join(
        _element(child, prefix, ids) + html.escape(child.tail or "", quote=False)
        for child in el if _name(child) in ELEMENTS | UNWRAPPED)
    if name in UNWRAPPED:
        return inner
    kept = "".join(f' {key}="{html.escape(value)}"' for key, value in _attributes(el, prefix, ids))
    return f"<{name}{extra if name == 'svg' else ''}{kept}>{inner}</{name}>"


def _attributes(el: ET.Element, prefix: str, ids: set[str | None]) -> list[tuple[str, str]]:
    kept = []
    for key, value in el.attrib.items():
        local = key.rsplit("}", 1)[-1] if key.startswith("{") else key
        if key.startswith("{") and not key.startswith(f"{{{XLINK_NS}}}"):
            continue  # attributes of other namespaces (inkscape, sodipodi, ...)
        if local not in ATTRIBUTES or (key.startswith("{") and local != "href"):
            continue
        if local == "href":  # only a reference inside the figure (<use href="#node1">)
            if not value.startswith("#") or value[1:] not in ids:
                continue
            kept.append(("href", f"#{prefix}-{value[1:]}"))
            continue
        if local == "id":
            kept.append(("id", f"{prefix}-{value}"))
            continue
        local_refs = _LOCAL_URL.sub(lambda m: f"url(#{prefix}-{m.group(1)})" if m.group(1) in ids else "none", value)
        if _UNSAFE_VALUE.search(_LOCAL_URL.sub("", value)):
            continue  # a fetch, a script URL or a CSS escape: the attribute goes
        kept.append((local, local_refs))
    return kept
