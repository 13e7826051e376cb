"""Nothing silently lost: every file under seeds/ is a document or a skip with a reason; one bad file stops nothing.

Each reason is checked to name the file and never to quote its content (a secret planted in every bad
file must appear in no reason). No model is loaded.
"""

import os
from pathlib import Path

import pytest
from fpdf import FPDF

from rag.corpus.documents import load_corpus

SECRET = "RAG_API_KEY=s3cret-planted-value"
GOOD = "A good paragraph that should always be indexed, whatever else is in the folder.\n"


def _skips(seeds: Path) -> dict[str, str]:
    corpus = load_corpus(seeds, max_bytes=4096)
    assert [d.id for d in corpus.documents] == ["good"], "the good file must load whatever else is there"
    reasons = {s.path: s.reason for s in corpus.skipped}
    for path, reason in reasons.items():
        assert SECRET not in reason and "s3cret" not in reason
        assert path in reason or Path(path).stem + ".meta.json" in reason, f"the reason for {path} does not name it"
        assert reason.count(".") >= 1 and "\n" not in reason
    return reasons


@pytest.fixture
def seeds(tmp_path) -> Path:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "good.txt").write_text(GOOD, encoding="utf-8")
    return seeds


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("report.doc", SECRET.encode(), "unsupported type (.doc)"),
        ("README", SECRET.encode(), "unsupported type (without an extension)"),
        ("latin1.txt", SECRET.encode() + b" caf\xe9", "is not valid UTF-8"),
        ("empty.txt", b"", "is empty"),
        ("blank.md", b"  \n\n \t\n", "is empty"),
        ("huge.txt", (SECRET + " ").encode() * 200, "over the 0.0 MB limit"),
        ("bad-yaml.md", f"---\ntitle: [unclosed {SECRET}\n---\nBody text here.\n".encode(), "front matter is not valid YAML"),
        ("list-yaml.md", f"---\n- {SECRET}\n---\nBody text here.\n".encode(), "front matter must be a mapping"),
        ("only-heading.md", f"---\ntitle: T\n---\n# T\n".encode(), "has no body text"),
        ("broken.pdf", b"%PDF-1.4\n" + SECRET.encode() + b"\n%%EOF", "could not be parsed as PDF"),
        ("script-only.html", f"<html><head><script>{SECRET}</script></head><body></body></html>".encode(), "has no main text"),
    ],
)
def test_each_bad_file_is_skipped_with_its_reason(seeds, name, content, expected):
    (seeds / name).write_bytes(content)
    reasons = _skips(seeds)
    assert list(reasons) == [name]
    assert expected in reasons[name]


def test_a_pdf_without_a_text_layer_is_skipped_as_such(seeds):
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(10, 10, 80, 80, style="F")  # a scan is an image; a drawing has no text either
    pdf.output(str(seeds / "scan.pdf"))
    assert "has no text layer" in _skips(seeds)["scan.pdf"]


def test_invalid_sidecar_metadata_skips_that_document_naming_file_and_field(seeds):
    (seeds / "note.txt").write_text(GOOD, encoding="utf-8")
    (seeds / "note.meta.json").write_text('{"furniture": 5, "title": "' + SECRET + '"}', encoding="utf-8")
    (seeds / "other.txt").write_text(GOOD, encoding="utf-8")
    (seeds / "other.meta.json").write_text("{not json " + SECRET, encoding="utf-8")
    reasons = _skips(seeds)
    assert reasons["note.txt"] == "note.meta.json: field 'furniture' must be a list of strings (exact paragraphs that are not body text)"
    assert reasons["other.txt"].startswith("other.meta.json is not valid JSON (line 1")


def test_a_sidecar_is_metadata_not_a_skipped_document_and_an_orphan_one_is_reported(seeds):
    (seeds / "good.meta.json").write_text('{"title": "Good"}', encoding="utf-8")
    (seeds / "typo.meta.json").write_text('{"title": "Nothing beside me"}', encoding="utf-8")
    corpus = load_corpus(seeds)
    assert corpus.documents[0].title == "Good"
    assert [(s.path, "no document of the same name" in s.reason) for s in corpus.skipped] == [("typo.meta.json", True)]


def test_hidden_files_and_folders_are_skipped_not_read(seeds):
    (seeds / ".env").write_text(SECRET, encoding="utf-8")
    (seeds / ".drafts").mkdir()
    (seeds / ".drafts" / "draft.txt").write_text(GOOD, encoding="utf-8")
    reasons = _skips(seeds)
    assert set(reasons) == {".env", ".drafts"}
    assert "hidden file" in reasons[".env"] and "hidden folder" in reasons[".drafts"]


def test_links_out_of_seeds_are_not_followed_links_inside_are(seeds, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "shadow.txt").write_text(SECRET + "\n", encoding="utf-8")
    (seeds / "passwords.txt").symlink_to(outside / "shadow.txt")
    (seeds / "elsewhere").symlink_to(outside, target_is_directory=True)
    (seeds / "env.txt").symlink_to("/proc/self/environ")
    (seeds / "sub").mkdir()
    (seeds / "sub" / "inner.md").write_text("# Inner\n\n" + GOOD, encoding="utf-8")
    (seeds / "alias.md").symlink_to(seeds / "sub" / "inner.md")
    (seeds / "loop").symlink_to(seeds, target_is_directory=True)
    corpus = load_corpus(seeds)
    reasons = {s.path: s.reason for s in corpus.skipped}
    for name in ("passwords.txt", "elsewhere", "env.txt"):
        assert "symbolic link leading outside the seeds folder" in reasons[name]
    assert "already read" in reasons["loop"]
    assert {d.id for d in corpus.documents} == {"good", "alias", "sub.inner"}
    assert all(SECRET not in d.text for d in corpus.documents)


def test_a_sidecar_linking_outside_seeds_is_not_read(seeds, tmp_path):
    (tmp_path / "secret.json").write_text('{"title": "' + SECRET + '"}', encoding="utf-8")
    (seeds / "good.meta.json").symlink_to(tmp_path / "secret.json")
    corpus = load_corpus(seeds)
    assert corpus.documents == ()
    reasons = {s.path: s.reason for s in corpus.skipped}
    assert reasons["good.txt"] == "its sidecar good.meta.json is not a file inside the seeds folder; it is not read"
    assert "symbolic link leading outside" in reasons["good.meta.json"]


def test_a_pipe_is_skipped_without_blocking(seeds):
    os.mkfifo(seeds / "pipe.txt")
    assert "not a regular file" in _skips(seeds)["pipe.txt"]


def test_subfolder_ids_are_unique_and_a_clash_is_skipped_naming_both(seeds):
    (seeds / "a").mkdir()
    (seeds / "a" / "note.txt").write_text(GOOD, encoding="utf-8")
    (seeds / "a" / "Note.md").write_text(GOOD, encoding="utf-8")
    (seeds / "a-note.txt").write_text(GOOD, encoding="utf-8")
    corpus = load_corpus(seeds)
    assert [d.id for d in corpus.documents] == ["a-note", "a.note", "good"]
    assert [(s.path, s.reason) for s in corpus.skipped] == [
        ("a/note.txt", "a/note.txt has the same document id 'a.note' as a/Note.md; rename one")
    ]
