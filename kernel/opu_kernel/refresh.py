"""Re-execute notebooks on the OPU kernel and store their outputs: what
``python -m opu_kernel.check --refresh`` (and ``scripts/refresh-notebooks``) run.

The outputs are stored as ``python -m opu_kernel.check`` will compare them: same kernel, same
environment (one BLAS thread, the simulator), nbval's markers honoured — a ``# NBVAL_SKIP`` cell
is not run (its stored outputs stay), a ``# NBVAL_RAISES_EXCEPTION`` cell may raise.
"""

from __future__ import annotations

import time
from pathlib import Path

#: nbval's comment markers (alone on a comment line) and cell tags, mapped to the tags nbclient
#: understands. nbval accepts both spellings; nbclient knows only its own tags.
SKIP_MARKERS = {"NBVAL_SKIP"}
SKIP_TAGS = {"nbval-skip"}
RAISES_MARKERS = {"NBVAL_RAISES_EXCEPTION"}
RAISES_TAGS = {"nbval-raises-exception"}
NBCLIENT_SKIP = "skip-execution"
NBCLIENT_RAISES = "raises-exception"


class RefreshError(RuntimeError):
    """A notebook could not be re-executed; the file was left as it was."""


def comment_markers(source: str) -> set[str]:
    """nbval's markers in a cell: comment lines that are exactly ``# NBVAL_...``."""
    return {line.strip().lstrip("#").strip() for line in source.splitlines()
            if line.strip().startswith("#")}


def nbclient_tags(cell: dict) -> set[str]:
    """The nbclient tags a cell needs so that nbclient treats it as nbval will."""
    markers = comment_markers(cell.get("source", ""))
    tags = set(cell.get("metadata", {}).get("tags", []))
    needed = set()
    if markers & SKIP_MARKERS or tags & SKIP_TAGS:
        needed.add(NBCLIENT_SKIP)
    if markers & RAISES_MARKERS or tags & RAISES_TAGS:
        needed.add(NBCLIENT_RAISES)
    return needed - tags


def execute(nb, path: Path, kernel_name: str, timeout: float,
            allow_errors: bool = False) -> float:
    """Run the notebook ``nb`` (read from ``path``) in place from a fresh kernel, as nbval
    would: its markers honoured, no cell timestamps. Seconds taken; nbclient's exception when a
    cell fails (unless ``allow_errors``)."""
    from nbclient import NotebookClient

    added = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (tags := nbclient_tags(cell)):
            added[index] = tags
            cell.setdefault("metadata", {}).setdefault("tags", []).extend(sorted(tags))
    # record_timing=False: no per-cell timestamps, so an unchanged notebook gives no diff
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=timeout, record_timing=False,
                            skip_cells_with_tag=NBCLIENT_SKIP, allow_errors=allow_errors,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        for index, tags in added.items():  # the notebook keeps the user's own markers only
            metadata = nb.cells[index].metadata
            metadata.tags = [t for t in metadata.tags if t not in tags]
            if not metadata.tags:
                del metadata["tags"]
    return time.perf_counter() - start


def refresh(path: Path, kernel_name: str, timeout: float) -> float:
    """Run ``path`` from a fresh kernel and write it back with the new outputs; seconds taken.

    Raises RefreshError (the file untouched) when a cell fails.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    try:
        seconds = execute(nb, path, kernel_name, timeout)
    except Exception as exc:  # noqa: BLE001 - any failure: say which notebook, keep the file
        raise RefreshError(f"{path} failed, not written:\n{exc}") from exc
    nbformat.write(nb, path)
    return seconds
