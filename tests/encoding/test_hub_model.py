"""A hub model name: loaded from the local Hugging Face cache by path when it is there, refused at once when not.

Nothing is downloaded (the machine has no model hub); without this check an uncached name had the hub client
retry for about 90 s before its error. Both tests run with HF_HUB_OFFLINE unset, as a new user's shell has it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rag.config import PROJECT_ROOT
from rag.encoding.model import DEFAULT_MODEL_SHA256, resolve_model

HUB_NAME = "example-org/mini-model"


def _environment(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_HUB_CACHE"] = str(cache)
    return env


def test_an_uncached_hub_model_fails_in_seconds_with_one_clear_line(tmp_path):
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "note.txt").write_text("A short note about rivers and the sea.\n", encoding="utf-8")
    env = _environment(tmp_path / "empty-cache") | {
        "RAG_MODEL": HUB_NAME, "RAG_SEEDS_DIR": str(tmp_path / "seeds"), "RAG_INDEX_DIR": str(tmp_path / "index"),
    }
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "api.cli", "index"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"rag index: RAG_MODEL='{HUB_NAME}' is neither a folder nor a model in the local Hugging Face cache ({tmp_path / 'empty-cache'}); "
        "nothing is downloaded here: set RAG_MODEL to a folder holding the model, or to 'default'"
    ]
    assert took < 30, f"refusing an uncached hub name took {took:.1f} s"


def _cache_holding_the_packaged_model(cache: Path) -> Path:
    """A Hugging Face cache laid out as the hub client writes it, holding the packaged model under HUB_NAME."""
    packaged = resolve_model("default").local_dir
    repo = cache / ("models--" + HUB_NAME.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    for source in packaged.rglob("*"):
        if source.is_file():
            target = snapshot / source.relative_to(packaged)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    return snapshot


def test_a_cached_hub_model_is_loaded_from_its_cache_folder_by_path(tmp_path, monkeypatch):
    from huggingface_hub import constants

    snapshot = _cache_holding_the_packaged_model(tmp_path / "cache")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    spec = resolve_model(HUB_NAME)
    assert (spec.name, Path(spec.location), spec.local_dir) == (HUB_NAME, snapshot, snapshot)  # a folder: loaded offline
    assert spec.weights_sha256 == DEFAULT_MODEL_SHA256  # the weights' hash is recorded, as for any folder
