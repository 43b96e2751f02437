"""The `semdex` command as scripts use it: real subprocesses, real model, real index on disk.

Contract: results on stdout (pure JSON with --json), progress and problems on stderr, exit code
0 on success, 1 for a problem the person must fix (one line, no traceback), 2 for usage.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.extract import extract
from tests.fixtures.documents import make_corrupt_pdf, make_pdf

ROOT = Path(__file__).resolve().parent.parent
RESULT_LINE = re.compile(
    r"^ *(\d+)\. (-?\d+\.\d{1,2})  (\S.*)  \((p\. \d+|lines \d+-\d+|line \d+)\)$")

NOTES = """\
Shopping list for the weekend: apples, flour and the good olive oil.

The zebra at the city zoo escaped on Tuesday morning.
Keepers found it grazing in the botanical garden next to the roses.

Our quarterly tax return is due at the end of April.
Dinner on Friday: sushi 🍣 寿司 and a crème brûlée.
"""

ASTRONOMY = "\n".join(
    f"Observation {i}: the telescope showed {body} clearly tonight."
    for i, body in enumerate(["Jupiter", "Saturn's rings", "the Orion nebula", "Andromeda",
                              "the Moon's craters", "Mars", "Venus", "a comet"]))


def semdex(*args: str, env: dict[str, str] | None = None, data_dir: Path | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "SEMDEX_DATA_DIR"}
    full.update(env or {})
    pre = ["--data-dir", str(data_dir)] if data_dir else []
    return subprocess.run([sys.executable, "-m", "desktop.cli", *pre, *args],
                          capture_output=True, text=True, env=full, cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def env(starter_model, model_cache) -> dict[str, str]:
    return {"SEMDEX_MODEL_CACHE": str(model_cache)}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, env):
    """One folder indexed once through the CLI: (data dir, docs folder, summary, process)."""
    docs = tmp_path_factory.mktemp("cli-docs")
    (docs / "notes.txt").write_text(NOTES, encoding="utf-8")
    (docs / "sky.md").write_text(ASTRONOMY + "\n", encoding="utf-8")
    make_pdf(docs / "book.pdf", [
        "Chapter one. The lighthouse keeper lit the great lamp every evening.",
        "Chapter two. A recipe for sourdough: feed the starter with rye flour and bake the "
        "bread in a hot cast iron pot.",
    ])
    data = tmp_path_factory.mktemp("cli-data")
    proc = semdex("index", str(docs), "--chunk-tokens", "24", "--json", env=env, data_dir=data)
    assert proc.returncode == 0, proc.stderr
    return data, docs, json.loads(proc.stdout), proc


def test_index_prints_summary_on_stdout_and_progress_on_stderr(indexed):
    data, docs, summary, proc = indexed
    assert len(proc.stdout.strip().splitlines()) == 1  # the JSON summary, nothing else
    assert summary["files_indexed"] == 3 and summary["files_failed"] == 0
    assert summary["passages"] > 8 and summary["problems"] == []
    assert "Scanning folders" in proc.stderr and "Done in" in proc.stderr
    assert "Model: all-MiniLM-L6-v2" in proc.stderr


def test_second_index_run_reports_unchanged_and_adds_nothing(indexed, env):
    data, docs, summary, _ = indexed
    # no PATH: the known folders; the same passage length, or every file is cut anew
    proc = semdex("index", "--chunk-tokens", "24", "--json", env=env, data_dir=data)
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert again["files_unchanged"] == 3
    assert (again["files_indexed"], again["passages"], again["tokens"]) == (0, 0, 0)
    status = json.loads(semdex("status", "--json", env=env, data_dir=data).stdout)
    assert status["passages"] == summary["passages"]


def test_search_prints_file_place_score_and_snippet(indexed, env):
    data, docs, _, _ = indexed
    proc = semdex("search", "baking bread with a sourdough starter", env=env, data_dir=data)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    results = [RESULT_LINE.match(line) for line in lines[0::2]]
    assert all(results), lines
    first = results[0]
    assert first.group(1) == "1" and first.group(3) == str(docs / "book.pdf")
    assert first.group(4) == "p. 2"
    assert "sourdough" in lines[1] and lines[1].startswith("    ")
    assert any(m.group(4).startswith("line") for m in results)
    scores = [float(m.group(2)) for m in results]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= x <= 1.0 for x in scores)  # hybrid: the window's 0-1 scale
    assert proc.stderr.strip() == ""  # nothing but results for an interactive search
    # the same numbers as --json's display_score (which keeps the raw score beside it)
    out = json.loads(semdex("search", "baking bread with a sourdough starter", "--json",
                            env=env, data_dir=data).stdout)
    assert [f"{r['display_score']:.2f}" for r in out["results"]] == [m.group(2) for m in results]
    assert all(r["score"] < r["display_score"] for r in out["results"])


def test_search_json_is_pure_json_with_places(indexed, env):
    data, docs, _, _ = indexed
    proc = semdex("search", "an animal escaped from the zoo", "--json", "--mode", "semantic",
                  "--k", "2", "--per-file", "1", env=env, data_dir=data)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # the whole of stdout
    assert out["mode"] == "semantic" and len(out["results"]) == 2
    top = out["results"][0]
    assert top["path"] == str(docs / "notes.txt") and "zebra" in top["text"]
    assert len({r["path"] for r in out["results"]}) == 2
    text = (docs / "notes.txt").read_text(encoding="utf-8")
    assert text[top["start"]:top["end"]] == top["text"]
    assert top["page"] is None
    assert text.count("\n", 0, top["start"]) + 1 == top["line_start"]


def test_batch_queries_write_one_line_per_query_in_rank_order(indexed, env, tmp_path):
    data, docs, _, _ = indexed
    queries = [{"_id": "q1", "text": "lighthouse lamp"},
               {"_id": 2, "text": "telescope observation of planets"},
               {"_id": "q3", "text": "zzqx unmatched"},
               {"_id": "q4", "text": "crème brûlée 🙂"}]
    qfile = tmp_path / "queries.jsonl"
    qfile.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in queries) + "\n\n",
                     encoding="utf-8")
    proc = semdex("search", "--queries", str(qfile), "--json", "--k", "5", env=env,
                  data_dir=data)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(queries)
    outs = [json.loads(line) for line in lines]
    assert [o["_id"] for o in outs] == ["q1", "2", "q3", "q4"]
    for o in outs:
        assert 1 <= len(o["results"]) <= 5
        scores = [r["score"] for r in o["results"]]
        assert scores == sorted(scores, reverse=True)
        for r in o["results"]:
            assert {"path", "score", "page", "start", "end", "text"} <= set(r)
        counts = [r["path"] for r in o["results"]]
        assert max(counts.count(p) for p in counts) <= 3  # the default per-file cap
    assert outs[0]["results"][0]["path"] == str(docs / "book.pdf")
    assert outs[0]["results"][0]["page"] == 1
    assert outs[1]["results"][0]["path"] == str(docs / "sky.md")

    # keyword mode, no per-file limit: one long file may fill the list
    proc = semdex("search", "--queries", str(qfile), "--mode", "keyword", "--per-file", "0",
                  "--k", "6", env=env, data_dir=data)
    assert proc.returncode == 0, proc.stderr
    outs = [json.loads(line) for line in proc.stdout.splitlines()]
    sky = [r for r in outs[1]["results"] if r["path"].endswith("sky.md")]
    assert len(sky) > 3
    assert outs[2]["results"] == []  # no shared word: nothing, but still one line


def test_status_json_reports_each_folder(indexed, env):
    data, docs, summary, _ = indexed
    proc = semdex("status", "--json", env=env, data_dir=data)
    assert proc.returncode == 0, proc.stderr
    st = json.loads(proc.stdout)
    assert st["data_dir"] == str(data.resolve())
    assert st["model"]["starter"] is True and st["model"]["dims"] == 384
    (folder,) = st["folders"]
    assert folder["path"] == str(docs) and folder["exists"] is True
    assert (folder["files_indexed"], folder["files_failed"], folder["files_skipped"]) == (3, 0, 0)
    assert folder["passages"] == summary["passages"] == st["passages"]
    assert isinstance(folder["last_sync"], float) and folder["problems"] == []


def test_data_dir_from_environment(indexed, env):
    data, docs, _, _ = indexed
    proc = semdex("search", "lighthouse", "--mode", "keyword", "--json",
                  env={**env, "SEMDEX_DATA_DIR": str(data)})
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    assert [r["path"] for r in results] == [str(docs / "book.pdf")]


def test_task_and_instruction_flags(indexed, env):
    data, docs, _, _ = indexed
    proc = semdex("search", "lighthouse keeper", "--task", "qa", "--instruction",
                  "Find chapters", "--json", env=env, data_dir=data)
    assert proc.returncode == 0, proc.stderr
    assert "takes no instruction" in proc.stderr  # the starter model has no instructions
    assert json.loads(proc.stdout)["results"][0]["path"] == str(docs / "book.pdf")


def test_no_results_messages(indexed, env, tmp_path):
    data, _, _, _ = indexed
    proc = semdex("search", "zzqx", "--mode", "keyword", env=env, data_dir=data)
    assert (proc.returncode, proc.stdout.strip()) == (0, "No results."), proc.stderr
    proc = semdex("search", "anything", env=env, data_dir=tmp_path / "fresh")
    assert proc.returncode == 0, proc.stderr
    assert "nothing is indexed yet" in proc.stdout


def test_usage_and_input_errors(env, tmp_path):
    data = tmp_path / "data"
    for args, code, words in [
        (["search"], 1, "give a QUERY"),
        (["search", "x", "--k", "0"], 1, "--k"),
        (["index", str(tmp_path / "missing")], 1, "not a folder"),
        (["search", "x", "--mode", "fuzzy"], 2, "invalid choice"),
    ]:
        proc = semdex(*args, env=env, data_dir=data)
        assert proc.returncode == code, (args, proc.stderr)
        assert words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stdout == ""
    bad = tmp_path / "queries.jsonl"
    bad.write_text('{"_id": "a", "text": "fine"}\nnot json\n')
    proc = semdex("search", "--queries", str(bad), "--mode", "keyword", env=env, data_dir=data)
    assert proc.returncode == 1 and f"{bad}:2" in proc.stderr and proc.stdout == ""


def test_models_lists_usable_and_unusable_files(env, starter_model, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_text("not a model")
    proc = semdex("models", "--json", str(starter_model), str(bad), env=env,
                  data_dir=tmp_path / "data")
    assert proc.returncode == 0, proc.stderr
    entries = {Path(e["path"]).name: e for e in json.loads(proc.stdout)["models"]}
    good = entries[starter_model.name]
    assert good["usable"] is True and good["dims"] == 384 and good["family"] == "all-minilm"
    assert entries["broken.gguf"]["usable"] is False and entries["broken.gguf"]["problem"]


def test_index_with_model_flag_remembers_it_in_its_own_table(env, tmp_path):
    from tests.fixtures.tiny_gguf import write_tiny_llama

    tiny = write_tiny_llama(tmp_path / "tiny.gguf")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The budget plan for the project.\n")
    data = tmp_path / "data"
    proc = semdex("index", str(docs), "--model", str(tiny), "--json", env=env, data_dir=data)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files_indexed"] == 1
    st = json.loads(semdex("status", "--json", env=env, data_dir=data).stdout)  # no --model
    assert st["model"]["path"] == str(tiny) and st["model"]["dims"] == 64
    assert st["model"]["starter"] is False and st["passages"] == 1
    assert any(p.name.startswith(f"chunks_{st['model']['key']}")
               for p in (data / "lancedb").iterdir())
    # search uses the remembered model; llama.cpp's own chatter never reaches stdout
    proc = semdex("search", "budget", "--json", "--mode", "semantic", env=env, data_dir=data)
    assert proc.returncode == 0, proc.stderr
    assert [r["path"] for r in json.loads(proc.stdout)["results"]] == [str(docs / "a.txt")]


def test_bad_files_are_named_on_stderr_and_in_status(env, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "fine.txt").write_text("A perfectly fine note about hedgehogs.\n")
    make_corrupt_pdf(docs / "corrupt.pdf")
    (docs / "empty.txt").write_bytes(b"")
    os.mkfifo(docs / "pipe.txt")
    data = tmp_path / "data"
    proc = semdex("index", str(docs), env=env, data_dir=data, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    for name, reason in [("corrupt.pdf", "corrupt PDF"), ("empty.txt", "empty file"),
                         ("pipe.txt", "not a regular file")]:
        assert f"! {docs / name}: {reason}" in proc.stderr, proc.stderr
    assert "1 files indexed" in proc.stderr and "2 failed, 1 skipped" in proc.stderr
    proc = semdex("status", env=env, data_dir=data)
    assert proc.returncode == 0, proc.stderr
    assert f"failed: {docs / 'corrupt.pdf'}: corrupt PDF" in proc.stdout
    assert f"skipped: {docs / 'empty.txt'}: empty file" in proc.stdout
    assert "1 files, 1 passages, 2 failed, 1 skipped" in proc.stdout
    # the PDF reason is the extractor's; check it matches what extraction says
    with pytest.raises(Exception) as info:
        extract("corrupt.pdf", (docs / "corrupt.pdf").read_bytes())
    assert info.value.reason in proc.stdout


def test_output_is_utf8_whatever_the_locale_and_bom_is_accepted(indexed, env, tmp_path):
    data, docs, _, _ = indexed
    legacy = {**env, "PYTHONIOENCODING": "cp1252"}  # a Windows pipe: no emoji, no CJK
    qfile = tmp_path / "queries.jsonl"
    qfile.write_text('{"_id": "s", "text": "sushi"}\n', encoding="utf-8-sig")  # Notepad's BOM
    proc = semdex("search", "--queries", str(qfile), "--mode", "keyword", env=legacy,
                  data_dir=data)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert "sushi 🍣 寿司" in json.loads(line)["results"][0]["text"]
    proc = semdex("search", "sushi", "--mode", "keyword", env=legacy, data_dir=data)
    assert proc.returncode == 0, proc.stderr
    assert "寿司" in proc.stdout and "crème brûlée" in proc.stdout


def test_a_closed_pipe_ends_quietly(indexed, env):
    data, _, _, _ = indexed
    proc = subprocess.Popen(
        [sys.executable, "-m", "desktop.cli", "--data-dir", str(data), "status", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env}, cwd=ROOT)
    proc.stdout.close()  # like `| head` that has already gone
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err
