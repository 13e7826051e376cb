"""Issue 21, the library side: hostile files in seeds/ are skipped with a reason (or read), never stop the others.

Every file here is real, written into a tmp folder and read by the real loader (and, for HTML and PDF, the
real worker process). Each test's corpus also holds `good.txt`, which must load whatever else is there, and
every skip must be writable as UTF-8 JSON. No model is loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from fpdf import FPDF

import rag.corpus.formats
from rag.corpus import formats
from rag.corpus.documents import MAX_FOLDER_DEPTH, Skipped, load_corpus
from rag.corpus.formats import MAX_YAML_ALIASES, MAX_YAML_VALUES, Extractor
from eval.bench_hostile import pdf
from rag.errors import Unreadable

SUPPORTED = ", ".join(formats.SUPPORTED_SUFFIXES)  # .txt ... .pdf, then the office formats

GOOD = "A good paragraph that should always be indexed, whatever else is in the folder.\n"
BODY = "A paragraph of body text that is long enough to be indexed as a document of its own.\n"


@pytest.fixture
def seeds(tmp_path) -> Path:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "good.txt").write_text(GOOD, encoding="utf-8")
    return seeds


def _load(seeds: Path, **limits):
    corpus = load_corpus(seeds, **limits)
    assert "good" in [d.id for d in corpus.documents], "the good file must load whatever else is there"
    for skipped in corpus.skipped:
        json.dumps(skipped.as_dict(), ensure_ascii=False).encode("utf-8")  # /ready and /admin/reload serve these
        assert "\n" not in skipped.reason
    for doc in corpus.documents:
        json.dumps({**doc.metadata(), "source": doc.source, "extra": doc.extra}, ensure_ascii=False).encode("utf-8")
    return corpus


def _reasons(seeds: Path, **limits) -> dict[str, str]:
    return {s.path: s.reason for s in _load(seeds, **limits).skipped}


# --- 1. one bad file never aborts the corpus -------------------------------------------------


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("bad-date.md", "---\npublished: 2020-02-30\n---\n" + BODY, "bad-date.md front matter: field 'published' is not a real date"),
        ("deep.md", "---\nx: " + "[" * 600 + "]" * 600 + "\n---\n" + BODY, "deep.md: the front matter is nested more than 32 levels deep (the limit)"),
        ("loop.md", "---\nx: &a [*a]\n---\n" + BODY, "loop.md: the front matter holds a YAML alias inside the value it names (a loop)"),
        ("big.md", "---\nn: " + "9" * 5000 + "\n---\n" + BODY, "big.md: the front matter holds a number of more than 100 digits (the limit)"),
        ("inf.md", "---\nscore: .inf\n---\n" + BODY, "inf.md front matter: a field that is not a known one must be a finite number"),
        ("lone.md", '---\ntitle: "\\udc80"\n---\n' + BODY, "lone.md front matter: field 'title' holds text that is not valid Unicode"),
    ],
)
def test_hostile_front_matter_is_a_skip_reason_not_a_crash(seeds, name, content, expected):
    (seeds / name).write_text(content, encoding="utf-8")
    assert _reasons(seeds)[name].startswith(expected)


@pytest.mark.parametrize(
    "sidecar, expected",
    [
        ('{"n": ' + "9" * 5000 + "}", "note.meta.json holds a number of more than 100 digits (the limit)"),
        ('{"title": "\\udc80"}', "note.meta.json: field 'title' holds text that is not valid Unicode (a lone surrogate"),
        ('{"notes": ["ok", "\\ud800"]}', "note.meta.json: a field that is not a known one holds text that is not valid Unicode"),
        ('{"x": ' + "[" * 100_000 + "]" * 100_000 + "}", "note.meta.json is nested too deeply (more than 32 levels is the limit)"),
        ('{"x": ' + "[" * 500 + "]" * 500 + "}", "note.meta.json: a field that is not a known one is nested more than 32 levels deep"),
        ('{"score": Infinity}', "note.meta.json holds Infinity, which is not a JSON number"),
        ('{"title": "' + "x" * (1 << 20) + '"}', "note.meta.json is larger than 1024 KB, the limit for a metadata sidecar"),
    ],
)
def test_hostile_sidecars_skip_their_document_with_a_reason(seeds, sidecar, expected):
    (seeds / "note.txt").write_text(BODY, encoding="utf-8")
    (seeds / "note.meta.json").write_text(sidecar, encoding="utf-8")
    assert _reasons(seeds)["note.txt"].startswith(expected)


def test_symbolic_link_loops_are_skipped_file_folder_and_sidecar(seeds):
    (seeds / "loop.txt").symlink_to("loop.txt")
    (seeds / "loopdir").symlink_to("loopdir", target_is_directory=True)
    (seeds / "a.txt").symlink_to("b.txt")
    (seeds / "b.txt").symlink_to("a.txt")
    (seeds / "doc.txt").write_text(BODY, encoding="utf-8")
    (seeds / "doc.meta.json").symlink_to("doc.meta.json")
    reasons = _reasons(seeds)
    for name in ("loop.txt", "loopdir", "a.txt", "b.txt", "doc.meta.json"):
        assert reasons[name] == f"{name} is a symbolic link in a loop (it leads back to itself); it is not followed"
    assert reasons["doc.txt"] == "its sidecar doc.meta.json is a symbolic link in a loop; it is not read"


@pytest.fixture
def deep_chain(seeds):
    """1,100 folders `d/d/d/...` under seeds/, removed again bottom-up (shutil.rmtree, and so pytest's own
    clean-up, recurses too deeply for them)."""
    folder, chain = seeds, []
    for _ in range(1100):
        folder = folder / "d"
        folder.mkdir()  # os.makedirs itself recurses too deeply for this
        chain.append(folder)
    yield chain
    for folder in reversed(chain):
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()


def test_folders_nested_1100_deep_are_read_to_the_limit_and_skipped_below_it(seeds, deep_chain):
    for depth in (3, MAX_FOLDER_DEPTH, 1100):
        (deep_chain[depth - 1] / f"at-{depth}.txt").write_text(BODY, encoding="utf-8")
    corpus = _load(seeds)
    assert sorted(d.source.rsplit("/", 1)[-1] for d in corpus.documents) == ["at-3.txt", f"at-{MAX_FOLDER_DEPTH}.txt", "good.txt"]
    deep = "/".join(["d"] * (MAX_FOLDER_DEPTH + 1))
    assert [(s.path, s.reason) for s in corpus.skipped] == [
        (deep, f"{deep} is more than {MAX_FOLDER_DEPTH} folders deep (the limit); it is not read")
    ]


def test_a_name_of_251_bytes_is_read_though_its_sidecar_name_would_be_too_long(seeds):
    name = "n" * 247 + ".txt"  # 251 bytes; `<stem>.meta.json` would be 257, past the 255 a name may have
    (seeds / name).write_text(BODY, encoding="utf-8")
    corpus = _load(seeds)
    assert [d.source for d in corpus.documents] == ["good.txt", name] and corpus.skipped == ()


def _pdf_with(content: bytes, info: bytes | None = None, extra: tuple[bytes, ...] = (), compress: bool = False) -> bytes:
    """A one-page PDF written byte by byte (eval.bench_hostile.pdf, uncompressed unless asked): `content` is the
    page's content stream, `info` the object that the trailer's /Info names (object 6), `extra` objects 7, 8, ..."""
    return pdf(content, info, extra, compress)


TEXT_OPERATORS = b"BT /F1 12 Tf 72 712 Td (A readable paragraph of text in a PDF, long enough to be one passage.) Tj ET"


def test_a_pdf_whose_info_refers_to_itself_is_read_without_that_metadata(seeds):
    (seeds / "self-info.pdf").write_bytes(_pdf_with(TEXT_OPERATORS, info=b"6 0 R"))
    (seeds / "self-title.pdf").write_bytes(_pdf_with(TEXT_OPERATORS, info=b"<< /Title 7 0 R /Author (Ann) >>", extra=(b"7 0 R",)))
    corpus = _load(seeds)
    docs = {d.id: d for d in corpus.documents}
    assert corpus.skipped == ()
    assert docs["self-info"].text.startswith("A readable paragraph") and docs["self-info"].title == "self info"
    assert (docs["self-title"].title, docs["self-title"].author) == ("self title", "Ann")


def test_files_removed_while_the_folder_is_listed_are_skipped_as_removed(seeds, monkeypatch):
    (seeds / "gone.txt").write_text(BODY, encoding="utf-8")
    (seeds / "gone-dir").mkdir()
    (seeds / "gone-dir" / "inner.txt").write_text(BODY, encoding="utf-8")
    real_scandir = os.scandir

    class Listing(list):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def scandir_then_delete(path):
        with real_scandir(path) as entries:
            listed = Listing(entries)
        if isinstance(path, (str, Path)) and Path(path) == seeds.resolve():  # someone deletes them just after the folder was listed
            (seeds / "gone.txt").unlink()
            shutil.rmtree(seeds / "gone-dir")
        return listed

    monkeypatch.setattr(os, "scandir", scandir_then_delete)
    reasons = _reasons(seeds)
    assert reasons == {"gone.txt": "gone.txt was removed while reading", "gone-dir": "gone-dir was removed while reading"}


def test_files_removed_while_the_corpus_is_read_are_skipped_as_removed(seeds, monkeypatch):
    for name in ("a.txt", "b.txt", "c.txt"):
        (seeds / name).write_text(BODY, encoding="utf-8")
    (seeds / "c.meta.json").write_text('{"title": "C"}', encoding="utf-8")
    real_read = formats.read

    def read_then_delete(path, raw, name, *args, **kwargs):
        if name == "a.txt":  # while a.txt is read, b.txt and c's sidecar go away
            (seeds / "b.txt").unlink()
            (seeds / "c.meta.json").unlink()
        return real_read(path, raw, name, *args, **kwargs)

    monkeypatch.setattr(rag.corpus.formats, "read", read_then_delete)
    corpus = _load(seeds)
    assert {s.path: s.reason for s in corpus.skipped} == {"b.txt": "b.txt was removed while reading"}
    assert {d.id: d.title for d in corpus.documents} == {"a": "a", "c": "c", "good": "good"}  # c: read without a sidecar


def test_a_pipe_put_in_place_of_a_file_after_listing_does_not_block(seeds, monkeypatch):
    (seeds / "swapped.txt").write_text(BODY, encoding="utf-8")
    real_read = formats.read

    def read_then_swap(path, raw, name, *args, **kwargs):
        if name == "good.txt":
            (seeds / "swapped.txt").unlink()
            os.mkfifo(seeds / "swapped.txt")
        return real_read(path, raw, name, *args, **kwargs)

    monkeypatch.setattr(rag.corpus.formats, "read", read_then_swap)
    assert _reasons(seeds) == {"swapped.txt": "swapped.txt is not a regular file (a pipe, a socket or a device)"}


# --- 2. the YAML alias bomb --------------------------------------------------------------------


def _alias_levels(levels: int, aliases: int, base: int) -> str:
    lines = ["  a0: &a0 [" + ", ".join(["lol"] * base) + "]"]
    lines += [f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * aliases) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_the_yaml_alias_bomb_is_refused_at_once_naming_the_limit(seeds):
    bomb = "---\ntitle: Bomb\nbomb:\n" + _alias_levels(7, 9, 9) + "---\n" + BODY  # 9**8 values once expanded
    (seeds / "bomb.md").write_text(bomb, encoding="utf-8")
    assert len(bomb.encode()) < 1000
    started = time.perf_counter()
    reasons = _reasons(seeds)
    assert time.perf_counter() - started < 5  # was 40 s and GBs of memory
    assert reasons == {"bomb.md": f"bomb.md: the front matter uses more than {MAX_YAML_ALIASES} YAML aliases (*name; the limit)"}


def test_few_aliases_that_expand_to_too_many_values_are_refused(seeds):
    (seeds / "wide.md").write_text("---\nwide:\n" + _alias_levels(5, 4, 20) + "---\n" + BODY, encoding="utf-8")  # 20 aliases, 20,480 values
    assert _reasons(seeds)["wide.md"] == f"wide.md: the front matter expands to more than {MAX_YAML_VALUES:,} values (YAML aliases; the limit)"


def test_ordinary_aliases_and_front_matter_still_read(seeds):
    (seeds / "fine.md").write_text(
        "---\ntitle: Fine\npublished: 2020-02-29\nshared: &s [a, b]\nagain: *s\nnested: {x: [1, [2, [3]]]}\n---\n" + BODY, encoding="utf-8"
    )
    doc = {d.id: d for d in _load(seeds).documents}["fine"]
    assert (doc.title, doc.published) == ("Fine", "2020-02-29")
    assert doc.extra == {"shared": ["a", "b"], "again": ["a", "b"], "nested": {"x": [1, [2, [3]]]}}


# --- 3. names that are not UTF-8 ------------------------------------------------------------------


def test_names_that_are_not_utf8_are_shown_escaped_and_encode_as_json(seeds):
    os.close(os.open(os.path.join(os.fsencode(seeds), b"r\xe9sum\xe9.doc"), os.O_CREAT | os.O_WRONLY))
    with open(os.path.join(os.fsencode(seeds), b"caf\xe9.txt"), "w", encoding="utf-8") as f:
        f.write(BODY)
    with open(os.path.join(os.fsencode(seeds), b"caf\xe9.meta.json.bak"), "w", encoding="utf-8") as f:
        f.write("{}")
    (seeds / "line\nbreak.txt").write_text("", encoding="utf-8")
    corpus = _load(seeds)
    assert {s.path: s.reason for s in corpus.skipped} == {
        "r\\xe9sum\\xe9.doc": f"r\\xe9sum\\xe9.doc is of an unsupported type (.doc); supported: {SUPPORTED}",
        "caf\\xe9.meta.json.bak": f"caf\\xe9.meta.json.bak is of an unsupported type (.bak); supported: {SUPPORTED}",
        "line\\x0abreak.txt": "line\\x0abreak.txt is empty",
    }
    cafe = {d.id: d for d in corpus.documents}["caf-xe9"]
    assert (cafe.source, cafe.title) == ("caf\\xe9.txt", "caf\\xe9")


def test_a_skip_made_from_any_string_encodes_as_utf8_json():
    skipped = Skipped(os.fsdecode(b"caf\xe9.txt"), "caf\udce9.txt and \ud800 and a\nline")
    assert skipped.as_dict() == {"path": "caf\\xe9.txt", "reason": "caf\\xe9.txt and \\ud800 and a\\x0aline"}
    json.dumps(skipped.as_dict(), ensure_ascii=False).encode("utf-8")
    assert Skipped("plain/ünïcode.txt", "fine").path == "plain/ünïcode.txt"  # valid names are unchanged


# --- 4. extraction bounded by size and time ---------------------------------------------------------


def test_a_small_pdf_whose_stream_unpacks_past_the_size_limit_is_refused(seeds):
    stream = b"BT /F1 12 Tf 72 712 Td (" + b"A" * 1_000_000 + b") Tj ET"
    (seeds / "bomb.pdf").write_bytes(_pdf_with(stream, compress=True))
    assert (seeds / "bomb.pdf").stat().st_size < 5_000
    reasons = _reasons(seeds, max_bytes=200_000)
    assert reasons == {"bomb.pdf": "bomb.pdf: its text is over the 0.2 MB limit per document by page 1 (RAG_MAX_DOCUMENT_BYTES)"}


def _slow_files(seeds: Path) -> None:
    (seeds / "slow.pdf").write_bytes(_pdf_with(b"BT /F1 12 Tf 72 712 Td " + b"(a) Tj " * 400_000 + b"ET", compress=True))
    attributes = " ".join(f'a{i}="x"' for i in range(100_000))
    (seeds / "slow.html").write_text(f"<html><body><div {attributes}><p>{BODY}</p></div></body></html>", encoding="utf-8")


def _workers() -> list[int]:
    """Extraction workers that are children of this process."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and b"serve_worker" in command:
            found.append(int(pid))
    return found


def test_each_pdf_and_html_file_gets_a_time_budget_and_the_next_file_a_fresh_worker(seeds):
    _slow_files(seeds)
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=11)
    pdf.multi_cell(0, 5, BODY)
    pdf.output(str(seeds / "tame.pdf"))  # after both slow files: read by a fresh worker
    (seeds / "tame-page.html").write_text(f"<html><body><article><p>{BODY}</p></article></body></html>", encoding="utf-8")
    started = time.perf_counter()
    # 4 s: well above what the tame files need from a fresh worker on a loaded 2-core machine, well below the
    # slow ones (the PDF took 14 s here, the HTML over 60 s)
    corpus = _load(seeds, max_extract_seconds=4)
    took = time.perf_counter() - started
    for name in ("slow.pdf", "slow.html"):
        assert {s.path: s.reason for s in corpus.skipped}[name] == (
            f"{name}: reading it took longer than 4 s, the limit per file (RAG_MAX_EXTRACT_SECONDS); it was stopped"
        )
    assert {d.source for d in corpus.documents} == {"good.txt", "tame.pdf", "tame-page.html"}
    assert took < 40, f"two 4 s budgets and three worker starts took {took:.1f} s"
    assert _workers() == [], "the workers end with the load"


def test_a_worker_that_dies_costs_only_its_file(tmp_path):
    slow = _pdf_with(b"BT /F1 12 Tf 72 712 Td " + b"(a) Tj " * 400_000 + b"ET", compress=True)
    tame = _pdf_with(TEXT_OPERATORS)
    with Extractor(seconds=60) as extractor:
        assert extractor.extract(".pdf", tame, "first.pdf", 10**6).text.startswith("A readable paragraph")
        pid = extractor._proc.pid
        killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))  # as the OOM killer would
        killer.start()
        with pytest.raises(Unreadable, match=r"^slow.pdf: the PDF reader stopped on this file \(it crashed or ran out of memory\)$"):
            extractor.extract(".pdf", slow, "slow.pdf", 10**6)
        killer.join()
        assert extractor.extract(".pdf", tame, "after.pdf", 10**6).text.startswith("A readable paragraph")
        assert extractor._proc.pid != pid


HTML = """<!DOCTYPE html><html><head><title>Rivers | Site</title><meta name="author" content="Ann Author">
<meta property="article:published_time" content="2021-05-06"><link rel="canonical" href="https://example.org/rivers"></head>
<body><nav><a href="/">Home</a></nav><main><article><h1>Rivers</h1><p>{0}</p><h2>Mountains</h2><p>{0}</p></article></main></body></html>
""".format(BODY.strip())


def test_the_worker_extracts_exactly_what_the_in_process_reader_does(tmp_path):
    pdf = FPDF()
    pdf.set_title("A Small Report")
    pdf.set_author("Ann Author, Bob Builder")
    pdf.set_font("helvetica", size=11)
    for _ in range(2):
        pdf.add_page()
        pdf.multi_cell(0, 5, BODY * 3)
    pdf.output(str(tmp_path / "report.pdf"))
    with Extractor() as extractor:
        for suffix, raw in ((".pdf", (tmp_path / "report.pdf").read_bytes()), (".html", HTML.encode())):
            assert extractor.extract(suffix, raw, "x" + suffix, 10**6) == formats._extract(suffix, raw, "x" + suffix, 10**6)
