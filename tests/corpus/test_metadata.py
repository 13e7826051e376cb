"""Metadata validated once at load (issue 10, findings 1 and 6): coerce the unambiguous, refuse the rest by file and field."""

import datetime as dt
import json

import pytest

from rag.corpus.documents import load_corpus
from rag.errors import Unreadable
from rag.corpus.metadata import validate

BODY = "A paragraph of body text that is long enough to be a paragraph.\n"


def test_the_sidecar_of_the_issue_is_coerced_to_one_shape(tmp_path):
    (tmp_path / "doc.txt").write_text(BODY, encoding="utf-8")
    (tmp_path / "doc.meta.json").write_text(json.dumps({"title": 42, "published": 2020, "author": ["Ann", "Bob"]}), encoding="utf-8")
    doc = load_corpus(tmp_path).documents[0]
    assert (doc.title, doc.published, doc.author, doc.authors) == ("42", "2020", "Ann, Bob", ("Ann", "Bob"))
    assert all(isinstance(v, str) for v in doc.metadata().values() if v is not None)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"published": dt.date(2020, 3, 4)}, {"published": "2020-03-04"}),
        ({"published": dt.datetime(2020, 3, 4, 5, 6)}, {"published": "2020-03-04"}),
        ({"published": "2020-03"}, {"published": "2020-03"}),
        ({"published": " 2018-01-11 "}, {"published": "2018-01-11"}),
        ({"furniture": "abc"}, {"furniture": ["abc"]}),
        ({"furniture": ["a", "b"]}, {"furniture": ["a", "b"]}),
        ({"author": "Ann"}, {"author": "Ann", "authors": ("Ann",)}),
        ({"title": "  Two   spaces "}, {"title": "Two spaces"}),
        ({"url": "https://example.org/a?b=c"}, {"url": "https://example.org/a?b=c"}),
        ({"title": None, "tags": ["x", dt.date(2020, 1, 2)]}, {"tags": ["x", "2020-01-02"]}),
    ],
)
def test_unambiguous_values_are_coerced(raw, expected):
    assert validate(raw, "x.meta.json") == expected


@pytest.mark.parametrize(
    "raw, field, why",
    [
        ({"furniture": 5}, "furniture", "must be a list of strings"),
        ({"furniture": ["ok", 3]}, "furniture", "must be a list of strings"),
        ({"title": 4.5}, "title", "must be text"),
        ({"title": True}, "title", "must be text"),
        ({"title": ["a"]}, "title", "must be text"),
        ({"author": {"name": "Ann"}}, "author", "must be text"),
        ({"published": "January 11, 2018"}, "published", "must be a date"),
        ({"published": "2020-02-30"}, "published", "is not a real date"),
        ({"published": 20}, "published", "must be a date"),
        ({"url": "javascript:alert(1)"}, "url", "must be an http(s) URL"),
        ({"url": "JavaScript://example.org/%0aalert(1)"}, "url", "must be an http(s) URL"),
        ({"url": "data:text/html,<script>x</script>"}, "url", "must be an http(s) URL"),
        ({"url": "file:///etc/passwd"}, "url", "must be an http(s) URL"),
        ({"url": "https://"}, "url", "must be an http(s) URL"),
        ({"url": 5}, "url", "must be an http(s) URL"),
        ({"subtitle": "x" * 1001}, "subtitle", "longer than 1000"),
    ],
)
def test_the_rest_is_refused_naming_source_and_field_but_not_the_value(raw, field, why):
    with pytest.raises(Unreadable) as caught:
        validate(raw, "doc.meta.json")
    message = str(caught.value)
    assert message.startswith(f"doc.meta.json: field '{field}' ") and why in message
    assert "alert" not in message and "passwd" not in message


def test_page_metadata_is_lenient_a_bad_field_is_dropped():
    assert validate({"title": "T", "url": "javascript:alert(1)", "published": "soon"}, "page", lenient=True) == {"title": "T"}


def test_front_matter_javascript_url_skips_the_document_and_never_reaches_it(tmp_path):
    (tmp_path / "evil.md").write_text("---\ntitle: Evil\nurl: javascript:alert(document.cookie)\n---\n" + BODY, encoding="utf-8")
    (tmp_path / "fine.md").write_text("---\ntitle: Fine\npublished: 2019\nurl: http://example.org\n---\n" + BODY, encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert [(d.id, d.published, d.url) for d in corpus.documents] == [("fine", "2019", "http://example.org")]
    assert [(s.path, s.reason) for s in corpus.skipped] == [("evil.md", "evil.md front matter: field 'url' must be an http(s) URL")]


def test_yaml_dates_and_numbers_in_front_matter(tmp_path):
    (tmp_path / "n.md").write_text("---\ntitle: 1984\npublished: 2001-02-03\nauthor: [Ann, Bob]\n---\n" + BODY, encoding="utf-8")
    doc = load_corpus(tmp_path).documents[0]
    assert (doc.title, doc.published, doc.author) == ("1984", "2001-02-03", "Ann, Bob")
