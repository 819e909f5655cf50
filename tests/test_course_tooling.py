"""Notebook tooling: profiles, exercise strip/check, check helpers, metrics, and the papermill runner."""

from __future__ import annotations

import argparse
import json

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tinyvid.course import commands
from tinyvid.course.checks import check_close, check_true
from tinyvid.course.metrics import MIME_TYPE, collect_metrics, expect, report
from tinyvid.course.profiles import PROFILES, resolve_profile
from tinyvid.course.runner import format_results_table, run_notebooks
from tinyvid.course.strip import clean_notebook, dumps, strip_all, strip_notebook

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook(*cells) -> nbformat.NotebookNode:
    nb = new_notebook(cells=list(cells), metadata={"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i}"  # stable ids: new_*_cell draws random ones
    return nb


def course_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tinyvid")
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


# --- profiles -------------------------------------------------------------------------------------


def test_resolve_profile_auto_follows_env(monkeypatch):
    monkeypatch.setenv("TINYVID_PROFILE", "smoke")
    assert resolve_profile("auto") == "smoke"
    assert resolve_profile("gpu") == "gpu"  # an explicit name wins over the env var


def test_resolve_profile_auto_without_env_never_picks_full(monkeypatch):
    monkeypatch.delenv("TINYVID_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_profile("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_profile("auto") == "gpu"


def test_unknown_profile_lists_the_choices(monkeypatch):
    with pytest.raises(ValueError, match="smoke, cpu, gpu, full"):
        resolve_profile("laptop")
    monkeypatch.setenv("TINYVID_PROFILE", "tiny")
    with pytest.raises(ValueError, match="TINYVID_PROFILE"):
        resolve_profile("auto")
    assert PROFILES == ("smoke", "cpu", "gpu", "full")


# --- strip ----------------------------------------------------------------------------------------

SOLUTION_CELL = """\
def q_sample(x0, t, noise):
    # BEGIN SOLUTION: mix x0 and noise with sqrt(alpha_bar_t)
    a = alpha_bar[t].sqrt()
    return a * x0 + (1 - a**2).sqrt() * noise
    # END SOLUTION

# BEGIN SOLUTION
y = q_sample(x, 3, n)
# END SOLUTION
print("done")"""


def solution_notebook() -> nbformat.NotebookNode:
    code = new_code_cell(SOLUTION_CELL, execution_count=3, outputs=[new_output("stream", text="done\n")])
    params = new_code_cell('profile = "auto"', metadata={"tags": ["parameters"], "execution": {"iopub.status.busy": "2025-01-01T00:00:00Z"}})
    nb = notebook(new_markdown_cell("# BEGIN SOLUTION stays in markdown"), params, code)
    nb.metadata["widgets"] = {"huge": "state"}
    nb.metadata["colab"] = {"provenance": []}
    return nb


def test_strip_replaces_marked_regions_with_hint_at_same_indent():
    nb = solution_notebook()
    learner = strip_notebook(nb)
    assert learner.cells[2].source == (
        "def q_sample(x0, t, noise):\n"
        "    # TODO: mix x0 and noise with sqrt(alpha_bar_t)\n"
        '    raise NotImplementedError("Exercise: mix x0 and noise with sqrt(alpha_bar_t)")\n'
        "\n"
        "# TODO: your code here\n"
        'raise NotImplementedError("Exercise: your code here")\n'
        'print("done")'
    )
    assert learner.cells[0].source == nb.cells[0].source  # markdown untouched
    assert nb.cells[2].source == SOLUTION_CELL  # the input is not modified
    compile(learner.cells[2].source, "learner", "exec")


def test_strip_clears_outputs_trims_metadata_keeps_ids_and_tags():
    learner = strip_notebook(solution_notebook())
    code = learner.cells[2]
    assert code.outputs == [] and code.execution_count is None
    assert learner.cells[1].metadata == {"tags": ["parameters"]}
    assert set(learner.metadata) == {"kernelspec", "language_info", "colab"}
    assert [c.id for c in learner.cells] == ["c0", "c1", "c2"]
    assert dumps(learner) == dumps(strip_notebook(solution_notebook()))  # deterministic bytes
    assert dumps(learner).endswith("}\n") and '\n "cells": [\n' in dumps(learner)  # nbformat 1-space indent


@pytest.mark.parametrize(
    "source, message",
    [
        ("# BEGIN SOLUTION\nx = 1", "never closed"),
        ("x = 1\n# END SOLUTION", "without a '# BEGIN SOLUTION'"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION", "inside the region"),
    ],
)
def test_unbalanced_markers_name_notebook_and_cell(source, message):
    nb = notebook(new_code_cell("x = 0"), new_code_cell(source))
    with pytest.raises(ValueError, match=message) as info:
        strip_notebook(nb, name="solutions/01_ddpm.ipynb")
    assert "solutions/01_ddpm.ipynb: cell 1 (id c1)" in str(info.value)


def test_strip_all_writes_then_check_detects_stale_missing_extra_and_outputs(tmp_path):
    solutions, notebooks = tmp_path / "solutions", tmp_path / "notebooks"
    solutions.mkdir()
    nbformat.write(clean_notebook(solution_notebook()), solutions / "01_ddpm.ipynb")
    (solutions / "scratch.ipynb").write_text("not a course notebook")  # ignored: not NN_*.ipynb

    assert strip_all(solutions, notebooks) == [f"wrote {notebooks / '01_ddpm.ipynb'}"]
    assert strip_all(solutions, notebooks) == []  # idempotent
    assert strip_all(solutions, notebooks, check=True) == []
    assert "raise NotImplementedError" in (notebooks / "01_ddpm.ipynb").read_text()

    stale = nbformat.read(notebooks / "01_ddpm.ipynb", as_version=4)
    stale.cells[2].source += "\n# edited by hand"
    nbformat.write(stale, notebooks / "01_ddpm.ipynb")
    nbformat.write(solution_notebook(), solutions / "02_ddim.ipynb")  # has outputs, never stripped
    nbformat.write(notebook(new_code_cell("1")), notebooks / "09_old.ipynb")
    before = {p.name: p.read_bytes() for p in notebooks.iterdir()}

    problems = strip_all(solutions, notebooks, check=True)
    assert {p.name: p.read_bytes() for p in notebooks.iterdir()} == before  # check writes nothing
    text = "\n".join(problems)
    assert "01_ddpm.ipynb differs" in text
    assert "02_ddim.ipynb has outputs" in text and "02_ddim.ipynb is missing" in text
    assert "09_old.ipynb has no solution" in text
    assert len(problems) == 4

    # the CLI: --check fails and prints the problems; strip repairs; clean clears solution outputs
    assert course_cli(["course", "strip", "--check", "--solutions", str(solutions), "--notebooks", str(notebooks)]) == 1
    assert course_cli(["course", "strip", "--solutions", str(solutions), "--notebooks", str(notebooks)]) == 0
    assert not (notebooks / "09_old.ipynb").exists()
    assert course_cli(["course", "clean", "--solutions", str(solutions)]) == 0
    assert course_cli(["course", "strip", "--check", "--solutions", str(solutions), "--notebooks", str(notebooks)]) == 0


# --- checks ---------------------------------------------------------------------------------------


def reference_scale(x, s):
    return x * s


def inputs(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, generator=g), 2.0


def test_check_close_passes(capsys):
    check_close(lambda x, s: s * x, reference_scale, inputs, name="scale")
    assert "✅ scale: matches tinyvid's reference on 3 random inputs" in capsys.readouterr().out


def test_check_close_not_implemented():
    def learner(x, s):
        raise NotImplementedError("Exercise: your code here")

    with pytest.raises(AssertionError, match="scale: not implemented yet: fill in the exercise above"):
        check_close(learner, reference_scale, inputs, name="scale")


def test_check_close_shape_and_dtype_mismatch():
    with pytest.raises(AssertionError, match=r"shape differs: yours \(3, 2\), reference \(2, 3\)"):
        check_close(lambda x, s: (x * s).T, reference_scale, inputs, name="scale")
    with pytest.raises(AssertionError, match="dtype differs: yours torch.float64, reference torch.float32"):
        check_close(lambda x, s: (x * s).double(), reference_scale, inputs, name="scale")


def test_check_close_value_mismatch_says_where():
    def learner(x, s):
        y = x * s
        y[1, 2] += 0.5
        return y

    with pytest.raises(AssertionError) as info:
        check_close(learner, reference_scale, inputs, name="scale")
    message = str(info.value)
    assert "max abs error 0.5 at index (1, 2)" in message and "1 of 6 elements" in message
    assert "random input #1" in message


def test_check_close_compares_tuples_and_guards_in_place_edits():
    def learner(x, s):
        x.mul_(s)  # edits its input: the reference must not see that
        return x, x.sum()

    check_close(learner, lambda x, s: (x * s, (x * s).sum()), inputs, name="pair")


def test_check_true(capsys):
    check_true(torch.tensor([1.0, 2.0]) > 0, "all positive")
    assert "✅ all positive" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="❌ schedule decreases — look at the sign"):
        check_true(False, "schedule decreases", hint="look at the sign")


# --- metrics --------------------------------------------------------------------------------------


def test_expect_enforces_outside_smoke(capsys):
    with pytest.raises(AssertionError, match=r"fid = 41.5 misses its target ≤ 30 under the 'cpu' profile"):
        expect("fid", 41.5, at_most=30, profile="cpu")
    expect("fid", 41.5, at_most=30, profile="smoke")  # smoke: reported, not enforced
    expect("accuracy", torch.tensor(0.93), at_least=0.9, profile="gpu")
    out = capsys.readouterr().out
    assert "❌ fid = 41.5 (target ≤ 30) — not enforced in the 'smoke' profile" in out
    assert "✅ accuracy = 0.93 (target ≥ 0.9)" in out
    with pytest.raises(AssertionError, match="loss = nan"):
        expect("loss", float("nan"), at_most=1.0, profile="full")
    with pytest.raises(ValueError, match="exactly one"):
        expect("fid", 1.0, profile="cpu")


def test_expect_all_records_every_target_before_failing(capsys):
    from tinyvid.course.metrics import expect_all

    with pytest.raises(AssertionError) as error:
        expect_all([("a", 0.5, {"at_least": 0.9}), ("b", 1.0, {"at_most": 2.0}), ("c", 3.0, {"at_most": 2.0})], profile="cpu")
    assert "a = 0.5" in str(error.value) and "c = 3" in str(error.value) and "b =" not in str(error.value)
    out = capsys.readouterr().out
    assert "❌ a = 0.5" in out and "✅ b = 1" in out and "❌ c = 3" in out
    expect_all([("a", 0.5, {"at_least": 0.9})], profile="smoke")  # reported, not enforced


def test_collect_metrics_reads_display_data():
    record = {"fid": {"value": 12.5, "target": 30, "op": "<=", "met": True}}
    nb = notebook(
        new_code_cell("report(...)", outputs=[new_output("display_data", data={"text/plain": "x", MIME_TYPE: {"loss": {"value": 0.1}}})]),
        new_code_cell("print(1)", outputs=[new_output("stream", text="1\n")]),
        new_code_cell("expect(...)", outputs=[new_output("display_data", data={"text/plain": "✅", MIME_TYPE: record})]),
    )
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)  # as it comes back from disk
    assert collect_metrics(nb) == {"loss": {"value": 0.1}, **record}


def test_report_prints_outside_ipython(capsys):
    report(steps=300, fid=torch.tensor(12.3456))
    assert capsys.readouterr().out.split("\n")[:2] == ["steps  300", "fid    12.35"]


# --- runner ---------------------------------------------------------------------------------------

TINY = [
    ('profile = "auto"\nthreshold = 10', {"tags": ["parameters"]}),
    ('import os\nassert os.environ["TINYVID_PROFILE"] == profile == "smoke"\nloss = 0.25', {}),
    ("from tinyvid.course.metrics import expect, report\n"
     "report(steps=threshold)\n"
     'expect("loss", loss, at_most=0.5, profile=profile)\n'
     'expect("accuracy", 0.4, at_least=0.9, profile=profile, unit="%")', {}),
]


def test_runner_executes_records_failures_and_keeps_going(tmp_path, capsys):
    solutions, out = tmp_path / "solutions", tmp_path / "runs" / "smoke"
    solutions.mkdir()
    broken = notebook(new_code_cell('profile = "auto"', metadata={"tags": ["parameters"]}),
                      new_code_cell("raise RuntimeError('boom')"))
    nbformat.write(broken, solutions / "00_broken.ipynb")
    nbformat.write(notebook(*(new_code_cell(src, metadata=md) for src, md in TINY)), solutions / "01_tiny.ipynb")
    nbformat.write(notebook(new_code_cell("1")), solutions / "02_skipped.ipynb")

    results = run_notebooks("smoke", only=["00", "01"], out_dir=out, solutions_dir=solutions,
                            parameters={"threshold": 7}, progress=False, timeout=60)

    saved = json.loads((out / "results.json").read_text())
    assert saved == results
    assert saved["profile"] == "smoke" and saved["finished"] and saved["parameters"] == {"threshold": 7}
    assert {"platform", "cpu_count", "torch", "cuda_device"} <= set(saved["machine"])
    first, second = saved["notebooks"]
    assert first["name"] == "00_broken.ipynb" and first["status"] == "failed"
    assert "RuntimeError: boom" in first["error"]
    assert second["name"] == "01_tiny.ipynb" and second["status"] == "ok", second["error"]
    assert second["metrics"]["steps"] == {"value": 7}
    assert second["metrics"]["loss"]["met"] is True and second["metrics"]["loss"]["target"] == 0.5
    assert second["metrics"]["accuracy"]["met"] is False  # smoke: recorded, not enforced
    assert (out / "01_tiny.ipynb").exists() and not (out / "02_skipped.ipynb").exists()
    assert "[notebook 2/2] 01_tiny.ipynb" in capsys.readouterr().out

    table = format_results_table(results)
    assert "1 ok, 1 failed" in table
    assert "✅ loss = 0.25 (target ≤ 0.5)" in table and "❌ accuracy = 0.4% (target ≥ 0.9%)" in table
    assert "00_broken.ipynb: In [3]: RuntimeError: boom" in table

    assert course_cli(["course", "status", str(out)]) == 1  # a failed notebook makes status fail
    assert "steps = 7" in capsys.readouterr().out


def test_runner_only_refreshes_the_chosen_rows(tmp_path):
    solutions, out = tmp_path / "solutions", tmp_path / "runs" / "smoke"
    solutions.mkdir()
    for name in ("00_a", "01_b"):
        nbformat.write(notebook(new_code_cell('profile = "auto"', metadata={"tags": ["parameters"]}),
                                new_code_cell("from tinyvid.course.metrics import report\nreport(x=1)")),
                       solutions / f"{name}.ipynb")
    first = run_notebooks("smoke", out_dir=out, solutions_dir=solutions, progress=False, timeout=60)
    again = run_notebooks("smoke", only="01", out_dir=out, solutions_dir=solutions, progress=False, timeout=60)
    assert [e["name"] for e in again["notebooks"]] == ["00_a.ipynb", "01_b.ipynb"]
    assert again["notebooks"][0] == first["notebooks"][0]  # kept as it was
    assert again["notebooks"][1]["finished"] >= first["notebooks"][1]["finished"]
    other = run_notebooks("cpu", only="01", out_dir=out, solutions_dir=solutions, progress=False, timeout=60)
    assert [e["name"] for e in other["notebooks"]] == ["01_b.ipynb"]  # another profile's rows are not mixed in


def test_run_command_prints_table_and_smoke_hint(tmp_path, capsys, monkeypatch):
    fake = {"profile": "smoke", "parameters": {}, "started": "t0", "finished": "t1", "machine": {"cpu_count": 2},
            "notebooks": [{"name": "01_x.ipynb", "status": "ok", "seconds": 75.0, "error": None,
                           "metrics": {"fid": {"value": 20.0, "target": 30, "op": "<=", "met": True}}}]}
    calls = {}

    def fake_run(**kwargs):
        calls.update(kwargs)
        return fake

    monkeypatch.setattr("tinyvid.course.runner.run_notebooks", fake_run)
    code = course_cli(["course", "run", "--only", "01", "-p", "steps=20", "-p", "name=abc", "--out", "book/executed"])
    out = capsys.readouterr().out
    assert code == 0
    assert calls["only"] == "01" and calls["parameters"] == {"steps": 20, "name": "abc"}
    assert "01_x.ipynb" in out and "1m15s" in out and "✅ fid = 20 (target ≤ 30)" in out
    assert "smoke proves the code path, not the quality" in out and "--profile cpu" in out
    assert "the book will show these" in out
