"""Benchmark: index build time. `rag index --force` into a fresh dir (full build), then again over it
(a rebuild that reuses unchanged vectors). The index built here is the one the other sections use.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval.harness import log, run_rag_index  # noqa: E402


def section_build(index_dir: Path) -> dict:
    full_wall, manifest = run_rag_index(index_dir)
    re_wall, re_manifest = run_rag_index(index_dir)
    result = {
        "command": "rag index --force (RAG_INDEX_DIR=<fresh temp dir>)",
        "full_build_wall_s": round(full_wall, 2),
        "full_build_manifest_s": manifest["build_seconds"],
        "rebuild_reusing_vectors_wall_s": round(re_wall, 2),
        "rebuild_reusing_vectors_manifest_s": re_manifest["build_seconds"],
        "counts": manifest["counts"],
        "index_type": manifest["index_type"],
        "note": "wall = process start to exit (imports torch, loads the model); manifest = chunk + embed + write",
    }
    log(f"  full build {full_wall:.1f}s wall ({manifest['build_seconds']:.1f}s in build_index), "
        f"rebuild reusing vectors {re_wall:.1f}s wall; {manifest['counts']['passages']} passages, "
        f"{manifest['counts']['sentences']} sentences, {manifest['index_type']}")
    return result



if __name__ == "__main__":  # this benchmark alone, e.g. `python eval/bench_index.py --quick`
    import eval.bench as bench

    sys.exit(bench.main(["--sections", "build", *sys.argv[1:]]))
