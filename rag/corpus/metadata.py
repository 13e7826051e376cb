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
JSON cannot hold (NaN, infinities); text that is not valid Unicode (a lone
surrogate such as the JSON escape `"\\udc80"`, which no UTF-8 response can
carry); values nested more than `MAX_DEPTH` levels deep. An error names the
source and the field, never the value.

Sidecars are parsed by `load_json` here: at most `MAX_SIDECAR_BYTES`, integers of at
most `MAX_INT_DIGITS` digits (Python refuses to convert more than 4,300 anyway),
and nesting too deep for the parser is a skip reason, not a crash.

For metadata the user wrote (sidecar, front matter) an error skips the
document; for metadata found in a page or PDF (`lenient=True`) a bad field is
dropped, since the user never chose it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from rag.errors import Unreadable

TEXT_FIELDS = ("title", "subtitle", "publication", "category")
KNOWN_FIELDS = (*TEXT_FIELDS, "author", "published", "url", "furniture", "tags")
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_MAX_TEXT = 1000  # characters in one metadata value
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")  # what UTF-8 cannot encode (os.fsdecode, JSON escapes)
MAX_DEPTH = 32  # levels of lists/mappings inside one metadata value (front matter or sidecar)
MAX_INT_DIGITS = 100  # digits of one integer in front matter or a sidecar
MAX_SIDECAR_BYTES = 1024 * 1024  # one `<name>.meta.json`


class _JsonLimit(ValueError):
    """A sidecar past one of this module's limits (raised from inside the JSON parser)."""


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise _JsonLimit(f"holds a number of more than {MAX_INT_DIGITS} digits (the limit)")
    return int(digits)


def _no_constant(name: str):
    raise _JsonLimit(f"holds {name}, which is not a JSON number")


def load_json(data: bytes, name: str) -> dict:
    """The JSON object in the bytes of the sidecar `name`; raises Unreadable (the skip reason) for anything else."""
    if len(data) > MAX_SIDECAR_BYTES:
        raise Unreadable(f"{name} is larger than {MAX_SIDECAR_BYTES // 1024} KB, the limit for a metadata sidecar")
    try:
        loaded = json.loads(data.decode("utf-8"), parse_int=_bounded_int, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise Unreadable(f"{name} is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise Unreadable(f"{name} is not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    except _JsonLimit as exc:
        raise Unreadable(f"{name} {exc}") from None
    except RecursionError:
        raise Unreadable(f"{name} is nested too deeply (more than {MAX_DEPTH} levels is the limit)") from None
    if not isinstance(loaded, dict):
        raise Unreadable(f"{name} must hold a JSON object")
    return loaded


def validate(raw: Mapping, source: str, lenient: bool = False) -> dict:
    """The metadata in `raw` in its one accepted shape; raises Unreadable naming `source` and the field."""
    if not isinstance(raw, Mapping):
        raise Unreadable(f"{source} must hold a mapping of metadata fields")
    clean: dict = {}
    for key, value in raw.items():
        if not isinstance(key, str) or LONE_SURROGATE.search(key):
            if lenient:
                continue
            raise Unreadable(f"{source}: metadata keys must be strings of valid Unicode text")
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
        return {"furniture": [_unicode(i) for i in items]}
    return {key: _jsonable(value)}


def _unicode(text: str) -> str:
    """`text` if every character of it can be written as UTF-8 (no lone surrogates), else ValueError."""
    if LONE_SURROGATE.search(text):
        raise ValueError("holds text that is not valid Unicode (a lone surrogate, such as the escape \\udc80)")
    return text


def _text(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("must be text")
    if isinstance(value, int) and abs(value) >= 10**MAX_INT_DIGITS:
        raise ValueError(f"is a number of more than {MAX_INT_DIGITS} digits")
    text = _unicode(" ".join(str(value).split()))
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
    url = _unicode(value.strip())
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError("must be an http(s) URL")
    return url


def _jsonable(value, depth: int = 0):
    """Other keys (tags, notes) are kept as JSON; dates become ISO strings."""
    if depth > MAX_DEPTH:
        raise ValueError(f"is nested more than {MAX_DEPTH} levels deep (the limit)")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, list):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {_unicode(str(k)): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, str):
        return _unicode(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number (not NaN or infinity)")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**MAX_INT_DIGITS:
        raise ValueError(f"is a number of more than {MAX_INT_DIGITS} digits (the limit)")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise ValueError("must be a JSON value (text, number, list or mapping)")
