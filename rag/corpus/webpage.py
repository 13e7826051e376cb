"""HTML: a page's text with its structure, and what the page says about itself (rag/corpus/formats.py calls `read_html`).

The body comes from one of two readers, both flattened into blocks (paragraphs, list items, tables, headings,
code) separated by blank lines; a data table is groups of ` | ` rows, each opening with the table's first row,
as the office readers write a sheet (rag.corpus.office.row_blocks):

- trafilatura, for articles: it finds the main content of a web page (no navigation, cookie banners,
  scripts, styles, footers, related links). Its XML is flattened here; a `<code>` block keeps its line breaks.
- a structural walk of the page (`_walk`), when trafilatura drops most of the page's headings, as it does on
  generated manuals (Texinfo, DocBook, gtk-doc: a heading holding an `<a name>` anchor), or when the page holds
  code (`<pre>` of several lines, whose line breaks trafilatura may lose). It reads the
  `<main>`/`<article>` (else the `<body>`) in order: `h1`-`h6` in any case become headings, `<pre>` stays one
  block with its line breaks, and navigation is left out: `<nav>`, `<aside>`, scripts and forms, elements
  whose role or class names navigation (DocBook's NAVHEADER, Texinfo's nav-panel, tables of contents,
  breadcrumbs, sidebars, cookie banners), and blocks made only of links (a list of links is a menu).

Either way, navigation lines ("Next: Reporting bugs, Previous: Time, Up: Time [Contents][Index]") are dropped.

Metadata is read from the page's head, never guessed from its text: the title is `<title>` (else `og:title`,
else the first `<h1>`) without the site's name where the title joins the two by a separator ("City expands bike
lanes | Riverside Gazette": the name is `og:site_name`, or the other side of the page's own og:title or h1); the published date only from date metadata (`article:published_time`, `DC.date`,
`dcterms.created`, `citation_publication_date`, `itemprop=datePublished`, ...) or a `<time datetime>` in the
content, never from a copyright line; the author from `<meta name=author>` (or DC/citation creators); the URL
from `<link rel=canonical>` or `og:url`; the publication from `og:site_name`.
"""

from __future__ import annotations

import re

from rag.corpus.extracted import TABLE_CELL_SEPARATOR, Extracted
from rag.corpus.office import html_rows, row_blocks
from rag.corpus.metadata import validate
from rag.errors import Unreadable

_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_DROPPED_TAGS = ("script", "style", "noscript", "template", "iframe", "svg", "form", "button", "select", "textarea",
                 "nav", "aside", "head", "object", "embed", "canvas", "map")
_DROPPED_ROLES = {"navigation", "banner", "contentinfo", "search", "complementary", "menu", "menubar", "toolbar"}
# class/id words naming navigation: dropped whatever they hold
_NAVIGATION_WORDS = {"nav", "navbar", "navheader", "navfooter", "navigation", "nav-panel", "navpanel", "breadcrumb",
                     "breadcrumbs", "menu", "sidebar", "sphinxsidebar", "toc", "cookie", "cookies", "consent",
                     "skip-link", "skiplink", "pagination", "footer", "site-footer", "share", "social",
                     "author", "authorgroup", "corpauthor", "othercredit", "editor", "byline"}  # DocBook's title page credits
# dropped unless they hold a heading (a page's header may hold its h1)
_FURNITURE_WORDS = {"header", "site-header", "masthead", "banner", "related", "advert", "ad", "ads"}
_BLOCK_TAGS = {"p", "div", "li", "dd", "dt", "blockquote", "section", "article", "main", "table", "tr", "ul", "ol", "dl",
               "pre", "figure", "figcaption", "center", "address", "details", "summary", "header", "body", "caption",
               "thead", "tbody", "tfoot", "fieldset", "hr", "br", *_HEADINGS}
_LAYOUT = {"p", "div", "pre", "table", "ul", "ol", "dl", "blockquote", *_HEADINGS}  # a row holding these is layout, not data
_MAX_DEPTH = 200  # deeper subtrees are read as one block of text (no recursion past this)
_NAV_LINE = re.compile(
    r"^(?:(?:Next|Prev(?:ious)?|Up|Home|Top)\s*:\s*[^:\[\]]*?\s*)+(?:\[[^\[\]]{1,20}\]\s*)*$"
)
_WORD_SPLIT = re.compile(r"[\s_]+")
_DATE_PREFIX = re.compile(r"^\s*(\d{4}(?:-\d{2}(?:-\d{2})?)?)(?:$|[T\s])")
_DATE_META = ("article:published_time", "og:published_time", "published_time", "datepublished", "dc.date",
              "dc.date.issued", "dc.date.created", "dcterms.date", "dcterms.issued", "dcterms.created",
              "citation_publication_date", "citation_date", "pubdate", "publish-date", "publication_date", "date")
_AUTHOR_META = ("author", "dc.creator", "dcterms.creator", "citation_author", "article:author")


def read_html(raw: bytes, name: str) -> Extracted:
    """The page's text (blocks separated by blank lines), its headings' offsets and its metadata."""
    from lxml import html as lxml_html

    try:
        tree = lxml_html.document_fromstring(raw)
    except Exception:  # noqa: BLE001 - any parser failure is a skip reason, not a crash
        raise Unreadable(f"{name} could not be parsed as HTML") from None
    blocks = _trafilatura_blocks(raw, name)
    root = _content_root(tree)  # found once: the heading check, the code check, the walk and the date read it
    if _lost_headings(root, blocks) or _holds_code(root):
        blocks = _walk_page(root)
    blocks = [(text, heading) for text, heading in blocks if heading or not _NAV_LINE.match(text)]
    text, levels = _join_blocks(blocks)
    if not text.strip():
        raise Unreadable(f"{name} has no main text that could be extracted")
    meta = validate(page_metadata(tree, root), f"{name} page metadata", lenient=True)
    return Extracted(text, meta, kind="html", headings=frozenset(levels), heading_levels=tuple(levels.items()))


# --- trafilatura ------------------------------------------------------------------------------

_TRAFILATURA_BLOCKS = {"head", "p", "item", "quote", "row", "code", "list", "table", "div", "main", "doc", "cell"}
_CONTAINERS = {"list", "table", "div", "main", "doc"}


def _trafilatura_blocks(raw: bytes, name: str) -> list[tuple[str, bool]]:
    import trafilatura
    from lxml import etree

    try:
        xml = trafilatura.extract(
            raw, output_format="xml", include_comments=False, include_tables=True, include_links=False,
            include_images=False, include_formatting=False, favor_recall=True, with_metadata=False,
        )
    except Exception:  # noqa: BLE001 - any parser failure is a skip reason, not a crash
        raise Unreadable(f"{name} could not be parsed as HTML") from None
    if not xml:
        return []
    blocks: list[tuple[str, bool]] = []
    _flatten(etree.fromstring(xml.encode("utf-8")), blocks)
    return blocks


def _flatten(element, blocks: list[tuple[str, bool]]) -> None:
    """Blocks of text in reading order; inline elements (code, hi, ref) stay inside their block; a code block
    (a `<code>` holding a line break, trafilatura's rendering of `<pre>`) keeps its lines."""
    if element.tag == "code" and "\n" in "".join(element.itertext()).strip():
        _emit_code("".join(element.itertext()), blocks)
        return
    if element.tag == "table" and len(rows := [[clean("".join(c.itertext())) for c in row if c.tag == "cell"]
                                                for row in element.iter("row")]) >= 2:
        blocks += row_blocks(rows)
        return
    inline: list[str] = [element.text or ""]
    for child in element:
        if child.tag in _TRAFILATURA_BLOCKS and not (child.tag == "code" and element.tag not in _CONTAINERS | {"item"}
                                                     and "\n" not in "".join(child.itertext()).strip()):
            _emit(inline, _head_level(element), blocks)
            inline = []
            _flatten(child, blocks)
        else:
            inline.append("".join(child.itertext()))
        inline.append(child.tail or "")
    _emit(inline, _head_level(element), blocks)


def _head_level(element) -> int:
    """A trafilatura `<head rend="h2">`'s level (2), 1 for a `<head>` without one; 0 for any other element."""
    if element.tag != "head":
        return 0
    rend = element.get("rend") or ""
    return int(rend[1]) if len(rend) == 2 and rend[0] == "h" and rend[1] in "123456" else 1


# --- the structural walk ------------------------------------------------------------------------


def _lost_headings(root, blocks: list[tuple[str, bool]]) -> bool:
    """Whether trafilatura kept fewer than half of the headings under the page's content `root` (or nothing at all)."""
    page = {clean(h.text_content()) for h in root.iter(*_HEADINGS) if not _dropped_ancestor(h)}
    page.discard("")
    if not blocks:
        return True
    if not page:
        return False
    kept = {text for text, heading in blocks if heading}
    return len(page & kept) * 2 < len(page)


def _holds_code(root) -> bool:
    """Whether the page's content `root` holds a `<pre>` of several lines (trafilatura may join its lines)."""
    return any("\n" in pre.text_content().strip() for pre in root.iter("pre") if not _dropped_ancestor(pre))


def _walk_page(root) -> list[tuple[str, bool]]:
    blocks: list[tuple[str, bool]] = []
    _walk(root, blocks, 0)
    return blocks


def _content_root(tree):
    for path in ("//main", "//article", "//*[@role='main']"):
        found = tree.xpath(path)
        if found:
            return max(found, key=lambda e: len(e.text_content()))
    body = tree.find("body")
    return body if body is not None else tree


def _words(element) -> set[str]:
    words = set()
    for attribute in ("class", "id"):
        value = element.get(attribute)
        if value:
            words.update(_WORD_SPLIT.split(value.lower()))
    return words


def _is_dropped(element) -> bool:
    tag = element.tag if isinstance(element.tag, str) else ""
    if tag.lower() in _DROPPED_TAGS:
        return True
    if (element.get("role") or "").lower() in _DROPPED_ROLES or element.get("hidden") is not None:
        return True
    words = _words(element)
    if words & _NAVIGATION_WORDS:
        return True
    return bool(words & _FURNITURE_WORDS) and next(element.iter(*_HEADINGS), None) is None


def _dropped_ancestor(element) -> bool:
    return any(_is_dropped(e) for e in element.iterancestors()) or _is_dropped(element)


def _walk(element, blocks: list[tuple[str, bool]], depth: int) -> None:
    """Blocks of `element` in reading order: block elements start a new block, inline ones join the current."""
    inline: list[tuple[str, bool]] = [(element.text or "", False)]  # (text, inside a link)
    for child in element:
        if not isinstance(child.tag, str) or _is_dropped(child):  # a comment, a processing instruction, navigation
            inline.append((child.tail or "", False))
            continue
        tag = child.tag.lower()
        if tag in _BLOCK_TAGS or depth >= _MAX_DEPTH:
            _emit_inline(inline, blocks)
            inline = []
            if tag in _HEADINGS:
                _emit([child.text_content()], int(tag[1]), blocks)
            elif tag == "pre":
                _emit_code(child.text_content(), blocks)
            elif tag == "table" and _data_table(child):
                blocks += row_blocks([clean(cell) for cell in row] for row in html_rows(child))
            elif tag == "tr" and _data_row(child):
                _emit([TABLE_CELL_SEPARATOR.join(clean(cell.text_content()) for cell in child if isinstance(cell.tag, str))], False, blocks)
            elif depth >= _MAX_DEPTH:
                _emit([child.text_content()], False, blocks)
            else:
                _walk(child, blocks, depth + 1)
        else:
            inline.append((child.text_content(), tag == "a" or child.find(".//a") is not None and _all_links(child)))
        inline.append((child.tail or "", False))
    _emit_inline(inline, blocks)


def _data_row(row) -> bool:
    """A row of data, not of layout: no paragraph, list, table or heading inside it."""
    return not any(isinstance(e.tag, str) and e.tag.lower() in _LAYOUT for e in row.iterdescendants())


def _data_table(table) -> bool:
    rows = table.xpath("./tr | ./thead/tr | ./tbody/tr | ./tfoot/tr")
    return len(rows) >= 2 and all(_data_row(row) for row in rows)


def _all_links(element) -> bool:
    """Whether every word of an inline element is inside a link."""
    linked = "".join(a.text_content() for a in element.iter("a"))
    return clean(linked) == clean(element.text_content())


def _emit_inline(parts: list[tuple[str, bool]], blocks: list[tuple[str, bool]]) -> None:
    """One block of inline text, unless every word of it is a link (a menu, a table of contents, Prev/Next)."""
    words = "".join(text for text, _ in parts)
    unlinked = "".join(text for text, link in parts if not link)
    if clean(words) and not clean(unlinked).strip("|·•-–—,;:()[]"):
        return
    _emit([words], False, blocks)


# --- blocks into text ----------------------------------------------------------------------------


def _emit(parts: list[str], heading: int, blocks: list[tuple[str, int]]) -> None:
    """A block of text; `heading` its level as a heading (1-6), or 0 (False) for any other block."""
    text = clean("".join(parts))
    if text:
        blocks.append((text, heading))


def _emit_code(code: str, blocks: list[tuple[str, bool]]) -> None:
    """A code block: its lines kept (trailing spaces dropped, tabs kept), blank lines at its ends dropped."""
    lines = [line.rstrip() for line in code.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if lines:
        blocks.append(("\n".join(lines), False))


def clean(text: str) -> str:
    """Whitespace collapsed, Sphinx-style permalink marks (¶) dropped."""
    return " ".join(text.replace("¶", " ").split())


def _join_blocks(blocks: list[tuple[str, int]]) -> tuple[str, dict[int, int]]:
    """The page's text, and the offset -> level (1-6) of each heading block in it."""
    parts, levels, offset = [], {}, 0
    for text, heading in blocks:
        if heading:
            levels[offset] = int(heading)
        parts.append(text)
        offset += len(text) + 2
    return "\n\n".join(parts) + "\n", levels


# --- metadata -------------------------------------------------------------------------------------


def page_metadata(tree, root=None) -> dict:
    """Title, author, published date, URL and publication from the page's own metadata (see the module docstring);
    `root` is the page's content (`_content_root`), found here when not given."""
    meta: dict[str, list[str]] = {}
    for element in tree.iter("meta"):
        key = (element.get("property") or element.get("name") or element.get("itemprop") or "").strip().lower()
        value = (element.get("content") or "").strip()
        if key and value:
            meta.setdefault(key, []).append(value)
    root = _content_root(tree) if root is None else root
    publication = clean(meta.get("og:site_name", [""])[0])
    found = {"title": _title(tree, meta, publication, root), "author": _author(meta), "published": _published(tree, root, meta),
             "url": _canonical(tree, meta), "publication": publication}
    return {k: v for k, v in found.items() if v}


def _title(tree, meta: dict, publication: str = "", root=None) -> str:
    title = tree.find(".//title")
    text = clean(title.text_content()) if title is not None else ""
    og_title = clean(meta["og:title"][0]) if meta.get("og:title") else ""
    # the content's own h1 (inside <main> or <article>) before any other: a site's logo is often an h1 in its header
    content = root is not None and (root.tag in ("main", "article") or root.get("role") == "main")
    inner = next(iter(root.iter("h1")), None) if content else None
    first = inner if inner is not None else next(iter(tree.iter("h1")), None)
    heading = clean(first.text_content()) if first is not None else ""
    if text:
        return _without_site_name(text, publication, [og_title, heading] if inner is not None else [og_title], heading)
    return og_title or heading


# How a page title joins the page's own title and the site's name: "City expands bike lanes | Riverside Gazette"
_TITLE_SEPARATORS = re.compile(r"\s+(?:\||-|–|—|·|::|»)\s+")


def _without_site_name(title: str, site: str, own: list[str], heading: str = "") -> str:
    """`title` without the site's name, when a separator joins the two: what is left beside `site` (og:site_name)
    when the title opens or ends with it; else the side that is the page's own title (`own`: og:title, the h1 of
    its <main> or <article>); else the longer side, when one of those or a first h1 found elsewhere (`heading`,
    which may be the site's logo: only the title's opening side) starts with it at a word's end (the h1 "City
    expands bike lanes along the river"); else the title as it is."""
    separators = list(_TITLE_SEPARATORS.finditer(title))
    if not separators:
        return title
    first, last = separators[0], separators[-1]
    if site and title[last.end() :].casefold() == site.casefold():
        return title[: last.start()]
    if site and title[: first.start()].casefold() == site.casefold():
        return title[first.end() :]
    names = [o.rstrip("¶ ").casefold() for o in own if o]  # a Sphinx heading ends in its permalink's ¶
    guess = heading.rstrip("¶ ").casefold()
    if title.casefold() in names or title.casefold() == guess:  # the page's own title has the separator in it
        return title
    sides = [(title[: m.start()], title[m.end() :]) for m in separators]  # (opening, closing) at each separator
    for opening, closing in sides:
        for side in (opening, closing):
            if side.casefold() in names:
                return side
    for opening, closing in sides:
        if len(opening) >= len(closing) and any(_names(n, opening.casefold()) for n in [*names, guess] if n):
            return opening
        if len(closing) >= len(opening) and any(_names(n, closing.casefold()) for n in names):
            return closing
    return title


def _names(name: str, side: str) -> bool:
    """Whether `side` is `name`, or its start at the end of a word."""
    return name == side or (name.startswith(side) and not name[len(side)].isalnum())


def _author(meta: dict) -> str:
    for key in _AUTHOR_META:
        names = [clean(v) for v in meta.get(key, []) if not v.lower().startswith(("http://", "https://"))]
        if names := [n for n in names if n]:
            return ", ".join(dict.fromkeys(names))
    return ""


def _published(tree, root, meta: dict) -> str:
    for key in _DATE_META:
        for value in meta.get(key, []):
            if match := _DATE_PREFIX.match(value):
                return match.group(1)
    for element in tree.xpath("//*[@itemprop='datePublished']"):
        if match := _DATE_PREFIX.match(element.get("datetime") or element.get("content") or ""):
            return match.group(1)
    for element in root.iter("time"):
        if match := _DATE_PREFIX.match(element.get("datetime") or ""):
            return match.group(1)
    return ""


def _canonical(tree, meta: dict) -> str:
    for link in tree.iter("link"):
        if "canonical" in (link.get("rel") or "").lower().split() and link.get("href"):
            return link.get("href").strip()
    return (meta.get("og:url") or [""])[0]
