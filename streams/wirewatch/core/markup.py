"""Plain text out of pages that carry HTML: scrapers sometimes hand over markup.

Script, style and similar elements are dropped with their content, block
elements become line breaks, entities are decoded. Only text that contains
recognisable HTML tags is touched, so "a < b" in a plain page stays as it is.
Pure Python (the standard library's HTML parser).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["looks_like_html", "html_to_text"]

_TAG = re.compile(
    r"<\s*/?\s*(?:html|head|body|script|style|noscript|template|iframe|object|embed|svg|p|div|span|br|hr|a|b|i|u|em|"
    r"strong|li|ul|ol|h[1-6]|img|table|thead|tbody|tr|td|th|section|article|header|footer|nav|main|figure|"
    r"figcaption|time|blockquote|meta|link|form|input|button)\b[^>]*>|<!--.*?-->|<!doctype[^>]*>",
    re.IGNORECASE | re.DOTALL,
)
_DROP = {"script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "head"}
_BLOCK = {"p", "div", "br", "hr", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section",
          "article", "header", "footer", "nav", "main", "figure", "figcaption", "blockquote", "form"}


def looks_like_html(text: str) -> bool:
    return _TAG.search(text) is not None


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.dropping = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _DROP:
            self.dropping += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP:
            self.dropping = max(self.dropping - 1, 0)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.dropping:
            self.parts.append(data)


def html_to_text(text: str) -> str:
    """The visible text of an HTML fragment or page, one block per line."""
    extractor = _TextExtractor()
    extractor.feed(text)
    extractor.close()
    lines = (line.strip() for line in "".join(extractor.parts).split("\n"))
    return "\n".join(line for line in lines if line)
