"""The `rag` command: build the index, ask from a terminal, serve HTTP, and more.

    rag index [--force]             build the index if missing or stale (or always)
    rag ask "question" [-k 5] [--mode hybrid] [--json]
    rag serve [--host H] [--port P]
    rag eval ...                    retrieval quality report (see rag.evaluation)
    rag mcp                         MCP server over stdio, for desktop chat clients

Settings come from the environment (RAG_*, see rag.config); flags override them.
Errors print one line to stderr and exit non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
import time

from rag.config import Settings
from rag.errors import RagError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rag", description="Ask the document: cited passage retrieval.")
    sub = parser.add_subparsers(dest="command", required=True)

    p_index = sub.add_parser("index", help="build (or rebuild) the index")
    p_index.add_argument("--force", action="store_true", help="rebuild even if the index is current")

    p_ask = sub.add_parser("ask", help="ask a question and print cited passages")
    p_ask.add_argument("question")
    p_ask.add_argument("-k", "--top-k", type=int, default=5)
    p_ask.add_argument("--mode", default="hybrid", choices=["hybrid", "dense", "lexical"])
    p_ask.add_argument("--json", action="store_true", help="print the HTTP API's JSON instead")

    p_serve = sub.add_parser("serve", help="serve the HTTP API (and MCP at /mcp)")
    p_serve.add_argument("--host", default=None)
    p_serve.add_argument("--port", type=int, default=None)

    sub.add_parser("mcp", help="serve MCP over stdio (for desktop chat clients)")

    p_eval = sub.add_parser("eval", help="measure retrieval quality on eval/questions.jsonl")
    p_eval.add_argument("--split", default=None, help="only this split (dev or test); default: both")
    p_eval.add_argument("--no-plot", action="store_true")

    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("RAG_LOG_LEVEL", "WARNING").upper(), format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return COMMANDS[args.command](args, Settings())
    except RagError as exc:
        print(f"rag {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def cmd_index(args, settings: Settings) -> int:
    from rag.service import Service

    started = time.perf_counter()
    # `rag index` always may build; --force builds once even when the index is current (not twice when stale).
    service = Service.open(settings.model_copy(update={"auto_build": True}), progress=True, force=args.force)
    manifest = service.retriever.index.manifest
    sizes = [len(p.text) for p in service.retriever.passages]
    print(
        f"index {manifest['id']} in {settings.index_dir}: {manifest['counts']['passages']} passages "
        f"from {manifest['counts']['documents']} document(s), {min(sizes)}–{max(sizes)} characters "
        f"(mean {sum(sizes) / len(sizes):.0f}), model {manifest['model']['name']}, {manifest['index_type']} search; "
        f"built in {manifest['build_seconds']:.1f}s ({time.perf_counter() - started:.1f}s with loading)"
    )
    return 0


def cmd_ask(args, settings: Settings) -> int:
    from rag.service import Service

    service = Service.open(settings)
    result = service.query(args.question, args.top_k, args.mode)
    if args.json:
        from api.schemas import query_response

        response = query_response(result, service.documents, service.info()["model"], sum(result.timings_ms.values()))
        print(json.dumps(response.model_dump(), indent=2, ensure_ascii=False))
        return 0
    verdict = "" if result.answerable else "  (the documents may not answer this)"
    print(f"{result.question}{verdict}\n")
    for hit in result.hits:
        p, doc = hit.passage, service.documents[hit.passage.document]
        where = f"{doc.title} › {p.section or 'opening'} › ¶{'–'.join(map(str, sorted({p.paragraphs[0], p.paragraphs[-1]})))}"
        print(f"[{hit.rank}] {where}  chars {p.start}–{p.end}  score {hit.score:.4f}")
        print(textwrap.indent(textwrap.fill(p.text, 96), "    "))
        print(f"    ➜ {hit.highlight.text}\n")
    return 0


def cmd_serve(args, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app

    import signal

    from api.observability import configure_json_logging
    from api.ops import reload_in_background

    host = args.host or settings.host
    port = args.port or settings.port
    configure_json_logging(os.environ.get("RAG_LOG_LEVEL", "WARNING"))  # JSON lines on stderr, one per request
    app = create_app(settings)
    # SIGHUP: reload the index (after `rag index` in another process) without dropping a request.
    signal.signal(signal.SIGHUP, lambda signum, frame: reload_in_background(app))
    # SIGTERM/SIGINT: stop accepting, let requests in flight finish (up to SHUTDOWN_GRACE_SECONDS), exit.
    # Keep-alive: idle connections live longer than common clients keep them (httpx 5 s, aiohttp 15 s), so a
    # client never reuses a connection the server is closing at that instant (its request would be reset).
    uvicorn.run(
        app, host=host, port=port, timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        timeout_keep_alive=KEEP_ALIVE_SECONDS, log_config=None, access_log=False,
    )
    return 0


SHUTDOWN_GRACE_SECONDS = 10
KEEP_ALIVE_SECONDS = 20


def cmd_mcp(args, settings: Settings) -> int:
    from api.mcp_server import run_stdio

    run_stdio(settings)
    return 0


def cmd_eval(args, settings: Settings) -> int:
    from rag.evaluation import run_cli

    return run_cli(settings, split=args.split, plot_png=not args.no_plot)


COMMANDS = {"index": cmd_index, "ask": cmd_ask, "serve": cmd_serve, "mcp": cmd_mcp, "eval": cmd_eval}

if __name__ == "__main__":
    sys.exit(main())
