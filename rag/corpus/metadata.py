"""Document metadata: one schema, checked once when a document is loaded.

Metadata comes from a `<name>.meta.json` sidecar, Markdown YAML front matter, or
the page/PDF itself (HTML `<meta>` tags, PDF info). Whatever the source, it
passes `validate()` before it reaches a `Document`, so nothing downstream (the
API's response models, the MCP tools, the page) ever meets a wrong type.

Coerced, because the meaning is unambiguous:
- text fields (title, subtitle, publication, category): an integer becomes its
  digits (YAML reads `title: 1984` as a number); floats and booleans are refused;
- `author`: a list of names becomes "Ann, Bob" (the list stays in `authors`);
- `published`: a year (2020) becomes "2020"; a YAML/ISO date becomes
  "YYYY-MM-DD"; strings must be YYYY, YYYY-MM or YYYY-MM-DD and a real date;
- `furniture`: a single string becomes a one-item list (never one item per letter).
Refused: any other type; a `url` that is not http(s) with a host (no
`javascript:`, `data:`, `file:` links may reach the page or MCP clients); values
JSON cannot hold. An error names the source and the field, never the value.

For metadata the user wrote (sidecar, front matter) an error skips the
document; for metadata found in a page or PDF (`lenient=True`) a bad field is
dropped, since the user never chose it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from rag.errors import Unreadable

TEXT_FIELDS = ("title", "subtitle", "publication", "category")
KNOWN_FIELDS = (*TEXT_FIELDS, "author", "published", "url", "furniture", "tags")
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_MAX_TEXT = 1000  # characters in one metadata value


def validate(raw: Mapping, source: str, lenient: bool = False) -> dict:
    """The metadata in `raw` in its one accepted shape; raises Unreadable naming `source` and the field."""
    if not isinstance(raw, Mapping):
        raise Unreadable(f"{source} must hold a mapping of metadata fields")
    clean: dict = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            if lenient:
                continue
            raise Unreadable(f"{source}: metadata keys must be strings")
        if value is None:
            continue
        try:
            clean.update(_field(key, value))
        except ValueError as exc:
            if not lenient:
                named = f"field '{key}'" if key in KNOWN_FIELDS else "a field that is not a known one"  # never echo content
                raise Unreadable(f"{source}: {named} {exc}") from None
    return clean


def _field(key: str, value) -> dict:
    if key in TEXT_FIELDS:
        return {key: _text(value)}
    if key == "author":
        names = [_text(v) for v in value] if isinstance(value, list) else [_text(value)]
        names = [n for n in names if n]
        return {"author": ", ".join(names), "authors": tuple(names)} if names else {}
    if key == "authors":
        return {}  # derived from `author`
    if key == "published":
        return {"published": _date(value)}
    if key == "url":
        return {"url": _url(value)}
    if key == "furniture":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError("must be a list of strings (exact paragraphs that are not body text)")
        return {"furniture": items}
    return {key: _jsonable(value)}


def _text(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("must be text")
    text = " ".join(str(value).split())
    if len(text) > _MAX_TEXT:
        raise ValueError(f"is longer than {_MAX_TEXT} characters")
    return text


def _date(value) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool) and 1000 <= value <= 9999:
        return str(value)
    if isinstance(value, str) and (match := _DATE.match(value.strip())):
        year, month, day = (int(g) if g else 1 for g in match.groups())
        try:
            dt.date(year, month, day)
        except ValueError:
            raise ValueError("is not a real date") from None
        return value.strip()
    raise ValueError("must be a date as YYYY-MM-DD (or YYYY-MM, or a year)")


def _url(value) -> str:
    if not isinstance(value, str):
        raise ValueError("must be an http(s) URL")
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError("must be an http(s) URL")
    return url


def _jsonable(value):
    """Other keys (tags, notes) are kept as JSON; dates become ISO strings."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and value != value:
        raise ValueError("must not be NaN")
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise ValueError("must be a JSON value (text, number, list or mapping)") from None
    return value
