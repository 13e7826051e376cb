"""Files the library writes: atomically (a reader sees the old file or the new one, never half of one).

Every index file, exported model, quantized variant, sidecar and uploaded document goes through `atomic_path`:
the bytes go to a temporary file in the target's own folder (same file system, so the rename is atomic), which
replaces the target only once complete; on any error the temporary file is removed and the old target stays.
`hidden=True` gives the temporary file a leading dot, for folders that others read while it is written
(seeds/: the corpus reader passes hidden files by), and `durable=True` flushes it to disk before the rename.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: Path, suffix: str = ".tmp", hidden: bool = False, durable: bool = False) -> Iterator[Path]:
    """A temporary path beside `target` to write to; it becomes `target` when the block ends without error."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = ("." if hidden else "") + target.name + "."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if durable:
            with open(tmp, "rb+") as written:
                os.fsync(written.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(target: Path, data: str | bytes, hidden: bool = False, durable: bool = False) -> None:
    """Write `data` (text as UTF-8) to `target` atomically."""
    with atomic_path(target, hidden=hidden, durable=durable) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
