"""Fork server for the SIGKILL test: runs `rag index --force` (api.cli.main) in forked children.

Importing torch and sentence-transformers takes ~8 s on the test machine, so
instead of a fresh `rag index --force` process per kill, this process imports
everything once (but computes nothing, so forking is safe) and forks a child
per run; the child runs the real CLI entry point, and the test SIGKILLs it.

Protocol, one line each way:
  in:  RUN <index_dir> <seeds_dir> <slow_seconds>
  out: READY                     (once, after the imports)
       PID <pid>                 (the child started)
       WRITING <pid>             (the child's build starts writing index files)
       EXIT <pid> <status>       (the child ended: its exit code, or -signal)

With slow_seconds > 0 the child's index writes are slowed ("a slow disk"):
every fsync and rename in rag.index.store sleeps that long first, so a kill at a
random moment of the write phase lands between any two steps of it.
"""

from __future__ import annotations

import os
import sys
import time


def emit(line: str) -> None:
    os.write(1, (line + "\n").encode())  # one write per line: lines from parent and child never interleave


def run_child(index_dir: str, seeds_dir: str, slow: float) -> int:
    import rag.index.store
    import rag.index.build
    from api import cli

    os.environ["RAG_INDEX_DIR"] = index_dir
    os.environ["RAG_SEEDS_DIR"] = seeds_dir
    original_write = rag.index.store.write_file
    announced = False

    def write_file(*args, **kwargs):
        nonlocal announced
        if not announced:
            announced = True
            emit(f"WRITING {os.getpid()}")
        return original_write(*args, **kwargs)

    rag.index.store.write_file = write_file
    if slow > 0:

        class SlowOS:
            def __getattr__(self, name):
                return getattr(os, name)

            def fsync(self, fd):
                time.sleep(slow)
                return os.fsync(fd)

            def replace(self, src, dst):
                time.sleep(slow)
                return os.replace(src, dst)

        rag.index.store.os = SlowOS()
    sys.stdout = open(os.devnull, "w")  # the CLI's summary line is not protocol
    return cli.main(["index", "--force"])


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import faiss  # noqa: F401
    import sentence_transformers  # noqa: F401
    import torch  # noqa: F401

    import api.cli  # noqa: F401
    import rag.service  # noqa: F401
    from rag.encoding.model import resolve_model

    resolve_model("default")  # hash the weights once; children inherit the cache
    emit("READY")
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] != "RUN":
            break
        index_dir, seeds_dir, slow = parts[1], parts[2], float(parts[3])
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = run_child(index_dir, seeds_dir, slow)
            finally:
                os._exit(code)
        emit(f"PID {pid}")
        _, status = os.waitpid(pid, 0)
        emit(f"EXIT {pid} {os.waitstatus_to_exitcode(status)}")


if __name__ == "__main__":
    main()
