"""The HTML a stored comment may carry: a small allow-list, applied by Ammonia (through nh3) before anything is
stored, so a comment can never carry a script into a client that renders it.

Allowed: paragraphs and line breaks, strong and em, lists, code and pre, blockquote, and links to http, https and
mailto addresses (given rel="noopener noreferrer"). Everything else is dropped: script and style elements with their
content, every other element (its text kept, escaped), every attribute but a link's href (so no event handler and no
style), comments, and any link whose address is not absolute with one of those schemes (javascript: and data: URLs,
and relative ones, which would resolve against whatever page shows the comment). Text is escaped, so `a < b` is stored
as `a &lt; b`.
"""

from __future__ import annotations

import html

import nh3

TAGS = frozenset({"p", "br", "strong", "em", "ul", "ol", "li", "a", "code", "pre", "blockquote"})
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer"

# Built once: a Cleaner keeps its compiled settings across calls.
_COMMENT = nh3.Cleaner(
    tags=set(TAGS),
    clean_content_tags={"script", "style"},
    attributes={"a": {"href"}},
    url_schemes=set(URL_SCHEMES),
    # A relative link would resolve against whatever page shows the comment.
    url_relative="deny",
    link_rel=LINK_REL,
    strip_comments=True,
)
_TEXT_ONLY = nh3.Cleaner(tags=set(), attributes={})


def sanitize(content: str) -> str:
    return _COMMENT.clean(content)


def has_text(sanitized: str) -> bool:
    """Whether sanitised HTML shows any text: "<p> </p>" or "<br>" alone is an empty comment."""
    return bool(html.unescape(_TEXT_ONLY.clean(sanitized)).strip())
