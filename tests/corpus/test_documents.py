"""The loader: metadata from the sidecar, furniture kept out of the body, sections, Markdown."""

from rag.corpus.documents import load_corpus, load_document
from tests.conftest import ARTICLE, ARTICLE_ID, SEEDS

HEADINGS = [
    None,
    "Dogmatism vs. dialectical thought: Stagism vs. permanent revolution",
    "A Closer Analysis",
    "Material basis for communism",
    "Post WW2 Revolutions",
    "The Theory Negated",
    "Its Relevance Today",
]


def test_article_metadata_comes_from_the_sidecar():
    doc = load_document(ARTICLE)
    assert doc.id == ARTICLE_ID
    assert doc.title == "Permanent Revolution in 1917 Russia and Today"
    assert doc.author == "Juan Cruz Ferre"
    assert doc.publication == "Left Voice"
    assert doc.published == "2018-01-11"
    assert doc.subtitle.startswith("The theory of the permanent revolution can serve")


def test_text_is_the_file_byte_for_byte():
    doc = load_document(ARTICLE)
    assert doc.text.encode("utf-8") == ARTICLE.read_bytes()


def test_furniture_is_not_body():
    doc = load_document(ARTICLE)
    body = [doc.text[p.start : p.end] for p in doc.paragraphs]
    assert body[0].startswith("Marx and Engels predicted")
    assert body[-1].startswith("After decades of retreat")
    joined = "\n".join(body)
    for furniture in ("Ideas & Debates", "Buy this Issue", "Buy it now here", "Juan Cruz Ferre", "Left Voice Magazine"):
        assert furniture not in joined
    assert doc.body_start == doc.paragraphs[0].start and doc.body_end == doc.paragraphs[-1].end


def test_sections_are_recognised_and_footnote_markers_kept():
    doc = load_document(ARTICLE)
    assert [s.title for s in doc.sections] == HEADINGS
    for section in doc.sections[1:]:
        assert doc.text[section.heading_start : section.heading_end] == section.title
    bourgeoisie = next(p for p in doc.paragraphs if doc.text[p.start : p.end].startswith("Why was the Russian bourgeoisie"))
    assert bourgeoisie.section == HEADINGS[1]
    assert any("[5]" in doc.text[p.start : p.end] for p in doc.paragraphs)
    assert [p.number for p in doc.paragraphs] == list(range(1, len(doc.paragraphs) + 1))


def test_markdown_with_front_matter_and_headings(tmp_path):
    (tmp_path / "note.md").write_text(
        "---\ntitle: A Note\nauthor: Someone\npublished: 2020-01-01\n---\n# A Note\n\nFirst paragraph here.\n\n## Second part\n\nBody of the second part.\n",
        encoding="utf-8",
    )
    (tmp_path / "plain.txt").write_text("Just one paragraph of text.\n", encoding="utf-8")
    docs = {d.id: d for d in load_corpus(tmp_path).documents}
    note = docs["note"]
    assert (note.title, note.author, note.published) == ("A Note", "Someone", "2020-01-01")
    assert [note.text[p.start : p.end] for p in note.paragraphs] == ["First paragraph here.", "Body of the second part."]
    assert [p.section for p in note.paragraphs] == [None, "Second part"]
    assert docs["plain"].title == "plain"


def test_invalid_utf8_is_skipped_with_the_file_name_and_the_rest_still_loads(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9 au lait")
    (tmp_path / "good.txt").write_text("A paragraph that loads.\n", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert [d.id for d in corpus.documents] == ["good"]
    assert [s.path for s in corpus.skipped] == ["bad.txt"]
    assert corpus.skipped[0].reason.startswith("bad.txt is not valid UTF-8")


def test_corpus_reads_every_document_in_seeds():
    assert [d.id for d in load_corpus(SEEDS).documents] == [ARTICLE_ID]


def test_names_beyond_ascii_keep_distinct_readable_ids(tmp_path):
    """Accents are dropped (`Über-Notizen` -> `uber-notizen`, not `ber-notizen`); names in other scripts get a hash
    of their own, so `заметка.txt` and `メモ.txt` are two documents, not one id and a skip."""
    for name in ("Über-Notizen.txt", "заметка.txt", "メモ.txt", "Łódź straße.txt", "plain-name.txt"):
        (tmp_path / name).write_text(f"A short note kept in {name}.\n", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert not corpus.skipped
    ids = sorted(d.id for d in corpus.documents)
    assert ids[-3:] == ["lodz-strasse", "plain-name", "uber-notizen"]
    assert len(set(ids)) == 5 and all(i.startswith("document-") and len(i) == len("document-") + 8 for i in ids[:2])
    again = sorted(d.id for d in load_corpus(tmp_path).documents)
    assert again == ids  # stable: the hash is of the name
