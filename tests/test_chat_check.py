"""A chat model's first load is tried in a child process: a file llama.cpp aborts on fails
there with the reason, and the app goes on; a good one passes once and is remembered."""

from __future__ import annotations

import re

import pytest

from desktop.ask import chat_check
from desktop.ask.chat_model import ChatModel, ChatModelError, ChatSettings
from tests.fixtures import chat_templates as T
from tests.fixtures import tiny_gguf
from tests.fixtures.tiny_gguf import write_tiny_llama

ASSERT = re.compile(r"GGML_ASSERT\(ggml_can_mul_mat\(\w+, \w+\)\) failed")


def test_a_chat_model_passes_its_trial_once_and_is_remembered(smollm2, tmp_path):
    records = tmp_path / "checks.json"
    model = ChatModel(ChatSettings(str(smollm2), context=1024), trial=False)
    try:
        first = chat_check.check(model, records=records)
        assert first.ok and not first.remembered and first.stage == "done", first.reason
        again = chat_check.check(model, records=records)
        assert again.ok and again.remembered
        # another context is another load: tried again
        other = ChatModel(ChatSettings(str(smollm2), context=512), trial=False)
        try:
            assert not chat_check.check(other, records=records).remembered
        finally:
            other.close()
    finally:
        model.close()


def test_a_chat_model_llama_cpp_aborts_on_fails_in_the_child_only(tmp_path):
    check_dims = tiny_gguf._check_dims
    tiny_gguf._check_dims = lambda *a: None  # the fixture refuses such shapes itself
    try:  # 4 heads, 3 key/value heads: llama.cpp aborts creating the context
        path = write_tiny_llama(tmp_path / "crash-chat.gguf", name="tiny-chat", n_head=4,
                                n_head_kv=3, chat_template=T.CHATML)
    finally:
        tiny_gguf._check_dims = check_dims
    with pytest.raises(ChatModelError) as info:
        ChatModel(ChatSettings(str(path), context=512))
    message = str(info.value)
    assert message.startswith("crash-chat.gguf: llama.cpp aborted") and ASSERT.search(message)
    assert "found in a trial load in a separate process" in message
    # this process is alive, and the verdict is remembered: the next try costs no child
    with pytest.raises(ChatModelError, match="trial load"):
        ChatModel(ChatSettings(str(path), context=512))


@pytest.mark.slow
def test_semdex_ask_says_why_a_chat_model_cannot_be_used(tmp_path, starter_model):
    import os
    import subprocess
    import sys
    from pathlib import Path

    check_dims = tiny_gguf._check_dims
    tiny_gguf._check_dims = lambda *a: None
    try:
        path = write_tiny_llama(tmp_path / "crash-chat.gguf", name="tiny-chat", n_head=4,
                                n_head_kv=3, chat_template=T.CHATML)
    finally:
        tiny_gguf._check_dims = check_dims
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zoo.txt").write_text("The zebra lives at the zoo by the lake.\n", encoding="utf-8")
    env = dict(os.environ, SEMDEX_DATA_DIR=str(tmp_path / "data"))
    root = Path(__file__).resolve().parent.parent
    run = [sys.executable, "-m", "desktop.cli"]
    subprocess.run([*run, "index", str(docs)], env=env, cwd=root, check=True,
                   capture_output=True, timeout=300)
    proc = subprocess.run([*run, "ask", "--chat-model", str(path), "where is the zebra?"],
                          env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("semdex: could not answer: crash-chat.gguf: llama.cpp aborted")
    assert "trial load in a separate process" in last
