"""Build an index over a folder of hostile files beside the seed article, the way an operator would (issue #21).

Writes the folder (every hostile file of issue #21's library findings: front matter that is no real date,
600 nested `[`, a recursive alias, a 5,000-digit integer, the 7x9 alias bomb; sidecars with a 5,000-digit
integer, a lone surrogate, 100k nesting; symbolic-link loops of a file, a folder and a sidecar; 1,100 nested
folders; a 251-byte name; a name that is not UTF-8; a pipe; PDFs whose /Info refers to itself, whose one
compressed stream unpacks to 30 MB of text, or whose few KB of text operators take long to run; an HTML page
of 1.1 MB with 100k attributes on one tag), then runs

    /usr/bin/time -v python -m api.cli index      with RAG_SEEDS_DIR=<folder> RAG_INDEX_DIR=<tmp index>

and prints: the exit code, the peak RSS of the largest process (`/usr/bin/time`: the CLI or an extraction
worker), the peak of the whole process tree summed (sampled every 50 ms from /proc), the wall time, the
documents indexed, and every skipped file with its reason; then checks that each hostile file was indexed or
skipped with a reason. Files deleted while the corpus is read cannot be staged from outside a process;
tests/corpus/test_hostile_files.py covers them.

Usage:  python eval/bench_hostile.py [--keep DIR] [--max-rss-mb 1536] [--json]
Exit status: 0 when the build exits 0, every hostile file is accounted for and the peak RSS is within the limit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTICLE = ROOT / "seeds" / "permanent-revolution-1917-and-today.txt"
BODY = "A paragraph of body text that is long enough to be indexed as a document of its own.\n"
TEXT = b"BT /F1 12 Tf 72 712 Td (A readable paragraph of text in a PDF, long enough to be one passage of the corpus.) Tj ET"
NOT_UTF8 = os.fsdecode(b"caf\xe9.txt")
LONG_NAME = "n" * 247 + ".txt"  # 251 bytes: its sidecar's name would be 257


def pdf(content: bytes, info: bytes | None = None, extra: tuple[bytes, ...] = (), compress: bool = True) -> bytes:
    """A one-page PDF written byte by byte (object 6 is what the trailer's /Info names, if given)."""
    stream = zlib.compress(content, 9) if compress else content
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< " + (b"/Filter /FlateDecode " if compress else b"") + b"/Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        *([info] if info is not None else []),
        *extra,
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    trailer = b"<< /Size %d /Root 1 0 R" % (len(objects) + 1) + (b" /Info 6 0 R" if info is not None else b"") + b" >>"
    return bytes(out + b"trailer\n" + trailer + b"\nstartxref\n%d\n%%%%EOF\n" % xref)


def write_hostile(folder: Path) -> list[str]:
    """The hostile folder, beside a copy of the seed article; returns the paths (under `folder`) to account for."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ARTICLE, folder / ARTICLE.name)
    shutil.copy(ARTICLE.with_name(ARTICLE.stem + ".meta.json"), folder / (ARTICLE.stem + ".meta.json"))

    def write(name: str, data: str | bytes) -> None:
        (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))

    write("bad-date.md", "---\npublished: 2020-02-30\n---\n" + BODY)
    write("deep-yaml.md", "---\nx: " + "[" * 600 + "]" * 600 + "\n---\n" + BODY)
    write("recursive-alias.md", "---\nx: &a [*a]\n---\n" + BODY)
    write("big-int.md", "---\nn: " + "9" * 5000 + "\n---\n" + BODY)
    levels = ["  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 8)]
    write("alias-bomb.md", "---\ntitle: Bomb\nbomb:\n" + "\n".join(levels) + "\n---\n" + BODY)
    for stem, sidecar in [
        ("big-int-sidecar", '{"n": ' + "9" * 5000 + "}"),
        ("surrogate-sidecar", '{"title": "\\udc80"}'),
        ("deep-sidecar", '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ]:
        write(stem + ".txt", BODY)
        write(stem + ".meta.json", sidecar)
    os.symlink("loop.txt", folder / "loop.txt")
    os.symlink("loopdir", folder / "loopdir")
    write("loop-sidecar.txt", BODY)
    os.symlink("loop-sidecar.meta.json", folder / "loop-sidecar.meta.json")
    deep = folder
    for _ in range(1100):
        deep = deep / "d"
        os.mkdir(deep)  # os.makedirs recurses too deeply for this
    (deep / "bottom.txt").write_text(BODY, encoding="utf-8")
    write(LONG_NAME, BODY)
    write(NOT_UTF8, BODY)
    os.mkfifo(folder / "pipe.txt")
    write("self-info.pdf", pdf(TEXT, info=b"6 0 R", compress=False))
    write("self-title.pdf", pdf(TEXT, info=b"<< /Title 7 0 R >>", extra=(b"7 0 R",), compress=False))
    write("big-stream.pdf", pdf(b"BT /F1 12 Tf 72 712 Td (" + b"A" * 30_000_000 + b") Tj ET"))
    write("text-operators.pdf", pdf(b"BT /F1 12 Tf 72 712 Td " + b"(a) Tj " * 500_000 + b"ET"))
    attributes = " ".join(f'a{i}="x"' for i in range(100_000))
    write("attributes.html", f"<html><body><div {attributes}><p>{BODY}</p></div></body></html>")
    deep_name = "/".join(["d"] * 65)  # the first folder past the depth limit
    return [
        "bad-date.md", "deep-yaml.md", "recursive-alias.md", "big-int.md", "alias-bomb.md",
        "big-int-sidecar.txt", "surrogate-sidecar.txt", "deep-sidecar.txt",
        "loop.txt", "loopdir", "loop-sidecar.txt", "loop-sidecar.meta.json", deep_name,
        LONG_NAME, "caf\\xe9.txt", "pipe.txt", "self-info.pdf", "self-title.pdf",
        "big-stream.pdf", "text-operators.pdf", "attributes.html",
    ]


def remove_tree(top: Path) -> None:
    """Remove `top` bottom-up without recursion (shutil.rmtree recurses too deeply for 1,100 folders)."""
    stack = [(str(top), False)]
    while stack:
        path, emptied = stack.pop()
        if emptied:
            os.rmdir(path)
            continue
        stack.append((path, True))
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, False))
                else:
                    os.unlink(entry.path)


def tree_rss_kib(pid: int) -> int:
    """Resident set of `pid` and its descendants (KiB), from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/status") as f:
                status = f.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parent = int(fields.get("PPid", "0").strip() or 0)
        children.setdefault(parent, []).append(int(entry))
        rss[int(entry)] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo += children.get(current, [])
    return total


def run_build(seeds: Path, index: Path) -> dict:
    env = {**os.environ, "RAG_SEEDS_DIR": str(seeds), "RAG_INDEX_DIR": str(index), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "api.cli", "index"]
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="backslashreplace")
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], tree_rss_kib(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    largest = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    status = re.search(r"Exit status: (\d+)", err)
    skipped = dict(re.findall(r"^skipped (.+?): (.*)$", err, flags=re.M))
    return {
        "exit_code": int(status.group(1)) if status else proc.returncode,
        "peak_rss_mb": int(largest.group(1)) / 1024 if largest else None,
        "peak_tree_rss_mb": peak[0] / 1024,
        "seconds": round(seconds, 1),
        "summary": out.strip().splitlines()[-1] if out.strip() else "",
        "skipped": skipped,
        "stderr_tail": [line for line in err.splitlines() if line.startswith(("Traceback", "Error", "rag:"))][-5:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="write the folder and index here and keep them (default: a tmp dir, removed)")
    parser.add_argument("--max-rss-mb", type=float, default=1536)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    seeds, index = base / "seeds", base / "index"
    try:
        expected = write_hostile(seeds)
        sizes = {name: (seeds / name).stat().st_size for name in ("alias-bomb.md", "big-stream.pdf", "text-operators.pdf", "attributes.html")}
        result = run_build(seeds, index)
    finally:
        if not args.keep:
            remove_tree(base)
    indexed = re.search(r"from (\d+) document", result["summary"])
    documents = int(indexed.group(1)) if indexed else 0
    unaccounted = [name for name in expected if name not in result["skipped"]]
    # what is not skipped must be indexed: the article plus the files that are read (see the docs of each reader)
    read = [name for name in unaccounted if name in (LONG_NAME, "caf\\xe9.txt", "self-info.pdf", "self-title.pdf")]
    missing = [name for name in unaccounted if name not in read]
    result.update(documents=documents, read_hostile=read, missing=missing, sizes=sizes)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(f"exit code {result['exit_code']}; peak RSS {result['peak_rss_mb']:.0f} MB (largest process), "
              f"{result['peak_tree_rss_mb']:.0f} MB (process tree, sampled); {result['seconds']} s")
        print(result["summary"])
        print("sizes: " + ", ".join(f"{name} {size / 1024:,.1f} KB" for name, size in sizes.items()))
        print(f"{documents} documents indexed (the article and {len(read)} hostile files that are read: {', '.join(n[:24] for n in read)})")
        print(f"{len(result['skipped'])} skipped:")
        for path, reason in sorted(result["skipped"].items()):
            print(f"  {path[:60]}: {reason[:160]}")
        if missing:
            print(f"NOT ACCOUNTED FOR: {missing}")
        for line in result["stderr_tail"]:
            print(f"stderr: {line}")
    ok = result["exit_code"] == 0 and not missing and documents == 1 + len(read) and (result["peak_rss_mb"] or 0) <= args.max_rss_mb
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
