"""Ask with a real chat model: SmolLM2-135M-Instruct (Q4_1, a real ChatML template) answering
from a real index made with the starter model. Its answers are weak; what is tested is the
mechanics: streaming, the events, the budget, cancelling (between tokens and during prompt
processing), the citation filter, the refusal gate, and `semdex ask --json`'s shape."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from desktop.ask import answer as ask
from desktop.ask.chat_model import ChatCancelled, ChatModel, ChatSettings, GenerationStats
from desktop.engine import Engine

DOCS = {
    "bread.txt": "Sourdough bread needs a starter of flour and water, fed every day. Knead "
                 "the dough, let it rise overnight, and bake it at 240 degrees for 40 minutes.",
    "garden.md": "# Tomatoes\n\nTomato plants need full sun, deep watering twice a week and a "
                 "stake to climb. Pinch out the side shoots and feed them when the fruit sets.",
    "lamp.txt": "The lighthouse keeper climbed the tower each night to light the lamp for "
                "the ships. The lamp burned paraffin until 1952, then electricity.",
}


@pytest.fixture(scope="module")
def library(tmp_path_factory, starter_model) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ask")
    docs = root / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text + "\n", encoding="utf-8")
    data = root / "data"
    with Engine(data) as engine:
        for _ in engine.index([str(docs)]):
            pass
    return docs, data


@pytest.fixture(scope="module")
def chat(smollm2) -> ChatModel:
    model = ChatModel(ChatSettings(str(smollm2), context=2048, answer_tokens=48))
    yield model
    model.close()


def events_of(question: str, data: Path, chat, **kw) -> list:
    with Engine(data) as engine:
        return list(ask.answer(question, engine, chat, **kw))


def test_an_answer_streams_with_its_sources_and_timings(library, chat):
    _, data = library
    events = events_of("How long do I bake sourdough bread?", data, chat)
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "Sources" and kinds[-1] == "Done" and "Error" not in kinds
    sources = events[0].passages
    assert sources[0].n == 1 and sources[0].path.endswith("bread.txt")
    tokens = [e.text for e in events if isinstance(e, ask.Token)]
    assert len(tokens) >= 2  # streamed, not one block
    done = events[-1]
    assert done.answer == "".join(tokens).strip()
    assert set(done.cited) <= {s.n for s in sources}  # whatever it cited was given
    t = done.timings
    assert t["prompt_tokens"] > 50 and t["answer_tokens"] >= 1 and t["tokens_per_s"] > 0
    assert 0 < t["retrieval_s"] < t["first_token_s"] <= t["total_s"]


def test_a_question_the_documents_cannot_answer_is_refused_before_the_model(library):
    _, data = library
    loads = []
    events = events_of("Who won the football world cup in 1998?", data,
                       lambda: loads.append(1))
    assert [type(e).__name__ for e in events] == ["Refusal", "Done"]
    assert events[0].before_model and "close to the question" in events[0].reason
    assert events[-1].refused and loads == []  # the chat model was never loaded


def test_cancel_between_tokens_stops_at_once(chat):
    tokens = chat.prompt_tokens("Write a long story about a lighthouse keeper.")
    cancel = threading.Event()
    stats = GenerationStats()
    got = []
    with pytest.raises(ChatCancelled):
        for piece in chat.generate(tokens, 200, cancel, stats):
            got.append(piece)
            if len(got) == 3:
                cancel.set()
    assert stats.answer_tokens <= 4 and stats.stopped == "cancelled"
    assert "".join(chat.generate(chat.prompt_tokens("Say hello."), 4))  # still usable


def test_cancel_during_prompt_processing_stops_within_half_a_second(chat):
    long = chat.prompt_tokens("Summarise: " + "The keeper lit the lamp every night. " * 160)
    assert len(long) > 1000
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    t0 = time.perf_counter()
    with pytest.raises(ChatCancelled):
        list(chat.generate(long, 10, cancel))
    assert time.perf_counter() - t0 < 0.3 + 0.5
    assert "".join(chat.generate(chat.prompt_tokens("Say hello."), 4))  # still usable


def test_too_many_sources_are_fitted_to_a_small_context(library, smollm2):
    """A 512-token context cannot hold the question, the instructions, three passages and
    the answer's allowance: the sources are cut to fit, never a 'too many tokens' error."""
    _, data = library
    small = ChatModel(ChatSettings(str(smollm2), context=512, answer_tokens=200))
    try:
        events = events_of("Tell me about the lighthouse lamp and bread and tomatoes", data,
                           small)
    finally:
        small.close()
    assert not [e for e in events if isinstance(e, ask.Error)]
    done = events[-1]
    assert done.timings["prompt_tokens"] + 200 <= 512


def test_semdex_ask_json(library, smollm2, tmp_path):
    _, data = library
    out = subprocess.run(
        [sys.executable, "-m", "desktop", "ask", "How long do I bake sourdough bread?",
         "--data-dir", str(data), "--chat-model", str(smollm2), "--context", "2048",
         "--answer-tokens", "40", "--json"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)
    assert set(got) >= {"answer", "citations", "refused", "timings", "sources"}
    assert isinstance(got["answer"], str) and got["refused"] is False
    assert all(set(c) >= {"n", "path", "page", "start", "end"} for c in got["citations"])
    assert got["sources"][0]["path"].endswith("bread.txt")
    assert got["timings"]["first_token_s"] > 0
    # no chat model chosen: one line, exit 1; a broken one: its reason
    none = subprocess.run([sys.executable, "-m", "desktop", "ask", "why?", "--data-dir",
                           str(data)], capture_output=True, text=True, timeout=120)
    assert none.returncode == 1 and "no chat model chosen" in none.stderr
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 40)
    broken = subprocess.run([sys.executable, "-m", "desktop", "ask", "why?", "--data-dir",
                             str(data), "--chat-model", str(bad)], capture_output=True,
                            text=True, timeout=120)
    assert broken.returncode == 1 and "broken.gguf" in broken.stderr
