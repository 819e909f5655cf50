"""Learner notebooks are generated from `solutions/`: answers blanked, outputs stripped.

`solutions/NN_*.ipynb` is the only source. Each exercise's answer sits between
`# BEGIN SOLUTION` (optionally `# BEGIN SOLUTION: <hint>`) and `# END SOLUTION`;
`strip_all` writes `notebooks/NN_*.ipynb` with that region replaced by a TODO
and `raise NotImplementedError`, so the check cell below it tells the learner
"not implemented yet". Output is deterministic (nbformat JSON, 1-space indent,
sorted keys, trailing newline) and cell ids are kept, so diffs stay clean and
CI can check that `notebooks/` is exactly what `strip` would write.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import nbformat

BEGIN = re.compile(r"^(?P<indent>[ \t]*)#\s*BEGIN SOLUTION(?:\s*:\s*(?P<hint>.*?))?\s*$")
END = re.compile(r"^[ \t]*#\s*END SOLUTION\s*$")
NOTEBOOK_NAME = re.compile(r"^\d\d_.*\.ipynb$")
DEFAULT_HINT = "your code here"
# Notebook-level metadata worth keeping: what runs it (kernel, Colab/Kaggle accelerator), nothing per-machine.
KEEP_NOTEBOOK_METADATA = ("kernelspec", "language_info", "colab", "accelerator", "gpuClass", "kaggle", "jupytext")
# Cell metadata written by tools on every run: noise in diffs. Tags (the `parameters` cell) stay.
VOLATILE_CELL_METADATA = ("execution", "papermill", "ExecuteTime", "collapsed", "scrolled", "pycharm", "vscode")


def strip_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The learner version of a solution notebook (a new object; `nb` is not modified)."""
    out = clean_notebook(nb)
    for index, cell in enumerate(out.cells):
        if cell.cell_type == "code":
            where = f"{name}: cell {index}" + (f" (id {cell.get('id')})" if cell.get("id") else "")
            cell.source = strip_source(_text(cell.source), where)
    return out


def strip_source(source: str, where: str = "cell") -> str:
    """Replace each marked region by `# TODO: <hint>` + `raise NotImplementedError(...)` at the marker's indent."""
    lines = source.split("\n")
    kept: list[str] = []
    open_at: int | None = None
    for number, line in enumerate(lines, start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if open_at is not None:
                raise ValueError(f"{where}: '# BEGIN SOLUTION' on line {number} inside the region opened on line {open_at}")
            open_at = number
            indent, hint = begin["indent"], (begin["hint"] or "").strip() or DEFAULT_HINT
            kept.append(f"{indent}# TODO: {hint}")
            kept.append(f"{indent}raise NotImplementedError({json.dumps('Exercise: ' + hint, ensure_ascii=False)})")
        elif end:
            if open_at is None:
                raise ValueError(f"{where}: '# END SOLUTION' on line {number} without a '# BEGIN SOLUTION' before it")
            open_at = None
        elif open_at is None:
            kept.append(line)
    if open_at is not None:
        raise ValueError(f"{where}: '# BEGIN SOLUTION' on line {open_at} is never closed by '# END SOLUTION'")
    return "\n".join(kept)


def clean_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Outputs, execution counts and per-run metadata cleared (how `solutions/` is committed); a new object."""
    out = copy.deepcopy(nb)
    out.metadata = nbformat.NotebookNode(
        {k: out.metadata[k] for k in KEEP_NOTEBOOK_METADATA if k in out.get("metadata", {})}
    )
    with_ids = (out.nbformat, out.nbformat_minor) >= (4, 5)
    for index, cell in enumerate(out.cells):
        cell.source = _text(cell.source)
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
        if with_ids and not cell.get("id"):
            cell.id = f"cell-{index}"  # nbformat would invent a random one on every write
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return out


def has_outputs(nb: nbformat.NotebookNode) -> bool:
    return any(c.cell_type == "code" and (c.get("outputs") or c.get("execution_count")) for c in nb.cells)


def dumps(nb: nbformat.NotebookNode) -> str:
    """nbformat's JSON (1-space indent, sorted keys) with one trailing newline: byte-stable across runs."""
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def write_if_changed(nb: nbformat.NotebookNode, path: Path) -> bool:
    """Write only when the bytes change, so mtimes and editors stay calm."""
    text = dumps(nb)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    return True


def course_notebooks(directory: str | Path) -> list[Path]:
    """`NN_*.ipynb` in `directory`, sorted: the course's notebooks and nothing else."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and NOTEBOOK_NAME.match(p.name))


def strip_all(solutions_dir: str | Path = "solutions", notebooks_dir: str | Path = "notebooks", check: bool = False) -> list[str]:
    """Write `notebooks/` from `solutions/`; with `check=True` write nothing and return the problems.

    Writing returns what changed ("wrote …", "removed …"): a notebook in
    `notebooks/` without a solution is removed, since that folder is generated.
    Checking returns one line per problem; an empty list means CI passes.
    """
    solutions_dir, notebooks_dir = Path(solutions_dir), Path(notebooks_dir)
    solutions = course_notebooks(solutions_dir)
    messages: list[str] = []
    for source in solutions:
        nb = nbformat.read(source, as_version=4)
        target = notebooks_dir / source.name
        learner = strip_notebook(nb, name=str(source))
        if not check:
            if write_if_changed(learner, target):
                messages.append(f"wrote {target}")
            continue
        if has_outputs(nb):
            messages.append(f"{source} has outputs or execution counts: run `tinyvid course clean` before committing")
        if not target.exists():
            messages.append(f"{target} is missing: run `tinyvid course strip`")
        elif target.read_text(encoding="utf-8") != dumps(learner):
            messages.append(f"{target} differs from what strip writes from {source}: run `tinyvid course strip`")
    names = {p.name for p in solutions}
    for extra in course_notebooks(notebooks_dir):
        if extra.name not in names:
            if check:
                messages.append(f"{extra} has no solution {solutions_dir / extra.name}: delete it or add the solution")
            else:
                extra.unlink()
                messages.append(f"removed {extra} (no solution)")
    return messages


def clean_all(solutions_dir: str | Path = "solutions") -> list[str]:
    """Clear outputs in every solution notebook in place; returns "cleaned …" for each file changed."""
    changed = []
    for path in course_notebooks(solutions_dir):
        if write_if_changed(clean_notebook(nbformat.read(path, as_version=4)), path):
            changed.append(f"cleaned {path}")
    return changed


def _text(source: Any) -> str:
    return "".join(source) if isinstance(source, list) else source
