"""The `rag` command: the composition root for a terminal. Build the index, ask, serve, evaluate.

    rag index [--force]             build the index if missing or stale (or always)
    rag ask "question" [-k N] [--mode MODE] [--json]
    rag serve [--host H] [--port P] [--workers N]
    rag eval ...                    retrieval quality report (see eval.evaluation)
    rag mcp                         MCP server over stdio, for desktop chat clients
    rag --version

Settings come from the environment (RAG_*: library settings in rag.config,
server settings in api.settings); flags override them, and what a flag leaves
out is the library's default (`-k`: RAG_DEFAULT_TOP_K, `--mode`: RAG_DEFAULT_MODE;
the modes are `rag.config.MODES`). `rag ask` prints the answer HTTP returns
(api.render.query_response), as text or as its JSON. Errors print one line to
stderr and exit non-zero, never a traceback; a closed pipe (`| head`) ends
quietly, including the flush at exit (the SIGPIPE recipe of the Python docs).
Every command is a function tested in-process through `main(argv)`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from contextlib import contextmanager
from importlib import metadata as package_metadata
from pathlib import Path

from rag.config import MODES, Settings
from rag.errors import RagError

PACKAGE = "ask-the-document"


def version() -> str:
    try:
        return package_metadata.version(PACKAGE)
    except package_metadata.PackageNotFoundError:  # running from a checkout without installing
        return "unknown"


def _built_in(name: str) -> object:
    """A library setting's built-in default, for help texts (the value in force may come from RAG_*)."""
    return Settings.model_fields[name].default


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="rag", description="Ask the document: cited passage retrieval.")
    root.add_argument("--version", action="version", version=f"rag {version()}")
    sub = root.add_subparsers(dest="command", required=True)

    p_index = sub.add_parser("index", help="build (or rebuild) the index")
    p_index.add_argument("--force", action="store_true", help="rebuild even if the index is current")

    p_ask = sub.add_parser("ask", help="ask a question and print cited passages")
    p_ask.add_argument("question")
    p_ask.add_argument("-k", "--top-k", type=int, default=None, help=f"passages to print; default: RAG_DEFAULT_TOP_K ({_built_in('default_top_k')})")
    p_ask.add_argument("--mode", default=None, choices=MODES, help=f"default: RAG_DEFAULT_MODE ({_built_in('default_mode')})")
    p_ask.add_argument("--json", action="store_true", help="print the HTTP API's JSON instead")
    p_ask.add_argument("--document", action="append", default=[], help="only from this document id (repeatable)")
    p_ask.add_argument("--author", action="append", default=[], help="only from documents by this author (repeatable)")
    p_ask.add_argument("--section", action="append", default=[], help="only from this section (repeatable)")
    p_ask.add_argument("--after", default=None, metavar="YYYY-MM-DD", help="only documents published on or after")
    p_ask.add_argument("--before", default=None, metavar="YYYY-MM-DD", help="only documents published on or before")
    p_ask.add_argument("--verify", action=argparse.BooleanOptionalAction, default=None,
                       help="read the best evidence with the verifier too (a stricter verdict, about 15 ms more); default: RAG_VERIFIER (off)")

    p_serve = sub.add_parser("serve", help="serve the HTTP API (and MCP at /mcp)")
    p_serve.add_argument("--host", default=None)
    p_serve.add_argument("--port", type=int, default=None)
    p_serve.add_argument("--workers", type=int, default=1, help="worker processes serving one built index (default 1)")
    p_serve.add_argument("--watch", action="store_true", default=None, help="re-index when files in seeds/ change (RAG_WATCH=true)")

    sub.add_parser("mcp", help="serve MCP over stdio (for desktop chat clients)")

    p_eval = sub.add_parser("eval", help="measure retrieval quality (default: the bundled eval/questions.jsonl)")
    p_eval.add_argument("--questions", type=Path, default=None, metavar="FILE", help="a JSONL question file, a BEIR folder or a SQuAD JSON file")
    p_eval.add_argument("--out", type=Path, default=None, metavar="DIR", help="where to write the run (default eval/runs/<time>/)")
    p_eval.add_argument("--mode", default="all", choices=[*MODES, "all"])
    p_eval.add_argument("--k", type=int, default=10, help="ranking depth (default 10)")
    p_eval.add_argument("--config", type=Path, action="append", default=[], metavar="FILE",
                        help='a configuration to compare, e.g. {"name": "small", "settings": {"max_passage_tokens": 120}} (repeatable)')
    p_eval.add_argument("--split", default=None, help="only questions with this split (e.g. dev or test)")
    p_eval.add_argument("--no-plot", action="store_true")
    return root


def main(argv: list[str] | None = None, encoders=None) -> int:
    """Run one command; `encoders` (a rag.encoding.encoders.Encoders) lets a caller share an already-loaded model."""
    args = parser().parse_args(argv)
    args.encoders = encoders
    logging.basicConfig(level=os.environ.get("RAG_LOG_LEVEL", "WARNING").upper(), format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        code = COMMANDS[args.command](args, Settings())
        sys.stdout.flush()  # a closed pipe shows here, where it is handled, not in the flush at interpreter exit
        return code
    except RagError as exc:
        print(f"rag {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`rag ask ... | head -1`): not an error
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        return 130


def _silence_stdout() -> None:
    """Point stdout's file descriptor at /dev/null (the Python docs' SIGPIPE recipe): what is still buffered, and
    the flush at interpreter exit, go nowhere instead of raising BrokenPipeError again ("Exception ignored ...")."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture): nothing flushes at exit
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def cmd_index(args, settings: Settings) -> int:
    from rag.index.build import build

    with _quiet_skip_log():  # listed below, once, from the report
        report = build(settings, args.encoders, force=args.force, progress=True)
    manifest = report.manifest
    counts = manifest["counts"]
    for skipped in report.skipped:
        print(f"skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    where = f"index {manifest['id']} in {settings.index_dir}: {counts['passages']} passages from {counts['documents']} document(s)"
    if not report.built:
        print(f"{where}, up to date (built {manifest['created_at']}); nothing to do ({report.seconds:.1f}s)")
        return 0
    print(
        f"{where}, model {manifest['model']['name']}, {manifest['index_type']} search; "
        f"built in {manifest['build_seconds']:.1f}s ({report.seconds:.1f}s with loading)"
    )
    return 0


def cmd_ask(args, settings: Settings) -> int:
    from api.render import query_response
    from rag.service import Service

    with _quiet_skip_log():  # an answer is no place for the index's skip list: `rag index` prints it
        service = Service.open(settings, args.encoders)
    filters = {"documents": args.document, "authors": args.author, "sections": args.section,
               "published_after": args.after, "published_before": args.before}
    response = query_response(service.query(service.parse(args.question, args.top_k, args.mode, filters, args.verify)))
    if args.json:
        print(json.dumps(response.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return 0
    read = " (verified)" if response.verified else ""
    notes = "".join(f"note: {warning}\n" for warning in response.warnings)
    print(f"{response.question}\n{response.verdict_text}{read}\n{notes}")
    for rank, passage in enumerate(response.passages, start=1):
        print(f"[{rank}] {cited_at(passage.citation)}  score {passage.score:.4f}")
        print(textwrap.indent(textwrap.fill(passage.text, 96), "    "))
        print(textwrap.fill(passage.highlight.text, 96, initial_indent="    ➜ ", subsequent_indent="      ") + "\n")
    return 0


@contextmanager
def _quiet_skip_log():
    """Skipped files are not logged meanwhile (`rag serve` logs each once; `rag index` prints them itself)."""
    logger = logging.getLogger("rag.corpus.skipped")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


CITED_TITLE_CHARS = 80  # a longer title is cut at a word in each citation line (`rag ask` prints one per passage)


def cited_at(cited) -> str:
    """Where a citation points, with what HTTP says of it and nothing HTTP leaves null invented: "Title › Section ›
    ¶2–3 · p. 4–5 · chars 120–980"; a passage before the first heading (section null) names no section. A title of
    more than CITED_TITLE_CHARS characters is cut at a word, with "…"."""
    from rag.corpus.passage_text import paragraph_mark  # reads only .paragraphs: a citation has them too

    title = cited.title
    if len(title) > CITED_TITLE_CHARS:
        title = title[: CITED_TITLE_CHARS + 1].rsplit(" ", 1)[0].rstrip(" ,;:–—-") + "…"
    parts = [title, *([cited.section] if cited.section is not None else []), paragraph_mark(cited)]
    where = " › ".join(parts)
    if cited.page is not None:
        spans = cited.page_end is not None and cited.page_end != cited.page
        where += f" · p. {cited.page}–{cited.page_end}" if spans else f" · p. {cited.page}"
    return f"{where} · chars {cited.start}–{cited.end}"


def cmd_serve(args, settings: Settings) -> int:
    from api.server import serve
    from api.settings import ServerSettings

    server_settings = ServerSettings()
    overrides = {key: value for key, value in (("host", args.host), ("port", args.port), ("watch", args.watch)) if value is not None}
    if not 1 <= args.workers <= 64:
        raise RagError(f"--workers must be from 1 to 64; got {args.workers}")
    if args.workers > 1 and (args.watch or server_settings.watch):
        raise RagError("--watch serves one process: with --workers, rebuild with `rag index` and send SIGHUP")
    if args.workers > 1:
        from api.server import serve_workers

        serve_workers(settings, server_settings.model_copy(update=overrides), args.workers)
        return 0
    serve(settings, server_settings.model_copy(update=overrides))
    return 0


def cmd_mcp(args, settings: Settings) -> int:
    from api.mcp_server import run_stdio
    from api.settings import ServerSettings

    run_stdio(settings, ServerSettings())
    return 0


def cmd_eval(args, settings: Settings) -> int:
    from eval.evaluation import run_cli

    return run_cli(
        settings, questions=args.questions, out=args.out, modes=[args.mode], k=args.k, split=args.split,
        plot_png=not args.no_plot, configs=args.config, encoders=args.encoders,
    )


COMMANDS = {"index": cmd_index, "ask": cmd_ask, "serve": cmd_serve, "mcp": cmd_mcp, "eval": cmd_eval}

if __name__ == "__main__":
    sys.exit(main())
