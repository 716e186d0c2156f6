"""Plain text out of pages that carry HTML: scrapers sometimes hand over markup.

Script, style and similar elements are dropped with their content, block
elements become line breaks, entities are decoded. Only text that contains
recognisable HTML tags is touched, so "a < b" in a plain page stays as it is.

Every step takes time linear in the page: no pattern looks past the next
``<`` while reading a tag, and a comment or raw-text element with no end is
searched for its end once, not once per opener. The standard library's
``HTMLParser`` is not used: on Python 3.11 it is quadratic on malformed
markup (80 KB of ``<p x='`` took half a minute). Pure Python.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

__all__ = ["looks_like_html", "html_to_text"]

_KNOWN_TAG = re.compile(
    r"<\s*+/?\s*+(?:html|head|body|script|style|noscript|template|iframe|object|embed|svg|p|div|span|br|hr|a|b|i|u|"
    r"em|strong|li|ul|ol|h[1-6]|img|table|thead|tbody|tr|td|th|section|article|header|footer|nav|main|figure|"
    r"figcaption|time|blockquote|meta|link|form|input|button)\b[^<>]*+>|<!doctype[^<>]*+>",
    re.IGNORECASE,
)
# A tag never holds "<", not even inside a quoted value here: reading one
# stops at the next "<", so a run of unclosed tags is read in one pass.
_TOKEN = re.compile(
    r"<!--|<(?P<slash>/?)(?P<name>[a-z][a-z0-9:-]*+)(?:[^<>\"']++|\"[^\"<]*+\"|'[^'<]*+')*+>|<[!?][^<>]*+>",
    re.IGNORECASE,
)
_RAW_TEXT = {"script", "style"}
_DROP = {"script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "head"}
_BLOCK = {"p", "div", "br", "hr", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section",
          "article", "header", "footer", "nav", "main", "figure", "figcaption", "blockquote", "form"}


def looks_like_html(text: str) -> bool:
    if _KNOWN_TAG.search(text) is not None:
        return True
    opener = text.find("<!--")
    return opener >= 0 and text.find("-->", opener + 4) >= 0


def html_to_text(text: str, *, spend: Callable[[], None] | None = None) -> str:
    """The visible text of an HTML fragment or page, one block per line.

    ``spend`` is called at every tag, so that a caller with a time budget can
    stop a long page (by raising).
    """
    parts: list[str] = []
    dropping = 0
    position = 0
    # Where the search for a closer found none: no closer lies beyond, so it is not searched for again.
    no_closer_from: dict[str, int] = {}
    for token in _TOKEN.finditer(text):
        if token.start() < position:
            continue
        if spend is not None:
            spend()
        if not dropping:
            parts.append(text[position : token.start()])
        position = token.end()
        if token.group(0) == "<!--":
            close = _find_closer(text, "-->", position, no_closer_from)
            if close < 0:  # never closed: text, as a browser shows an unclosed comment's opener
                if not dropping:
                    parts.append(token.group(0))
                continue
            position = close + 3
            continue
        name = (token.group("name") or "").lower()
        if not name:  # <!doctype …>, <?xml …?>
            continue
        closing = bool(token.group("slash"))
        if not closing and name in _RAW_TEXT and not token.group(0).endswith("/>"):
            close = _find_closer(text, f"</{name}", position, no_closer_from, ignore_case=True)
            position = len(text) if close < 0 else close
            continue
        if name in _DROP:
            dropping = max(dropping - 1, 0) if closing else dropping + 1
        elif name in _BLOCK:
            parts.append("\n")
    if not dropping:
        parts.append(text[position:])
    lines = (line.strip() for line in html.unescape("".join(parts)).split("\n"))
    return "\n".join(line for line in lines if line)


def _find_closer(text: str, closer: str, start: int, no_closer_from: dict[str, int], *, ignore_case: bool = False) -> int:
    if start >= no_closer_from.get(closer, len(text) + 1):
        return -1
    if ignore_case:
        found = re.compile(re.escape(closer), re.IGNORECASE).search(text, start)
        where = found.start() if found else -1
    else:
        where = text.find(closer, start)
    if where < 0:
        no_closer_from[closer] = start
    return where
