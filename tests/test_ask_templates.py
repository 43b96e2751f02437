"""Chat templates as real GGUFs carry them: Mistral 7B Instruct v0.1, v0.2 (strict, and the
later system-aware one), v0.3 (with tools) and ChatML, in tiny random-weight GGUFs written by
the tests' fixture. The exact prompt of Ask's one user message is pinned for each, with exactly
one BOS token; a broken template, one that fails on a question, and none at all are refused
in words before llama.cpp is called."""

from __future__ import annotations

import pytest

from desktop.ask.chat_model import ChatModel, ChatModelError, ChatSettings, check_chat_model
from desktop.models.chat_template import default_context
from tests.fixtures import chat_templates as T
from tests.fixtures.tiny_gguf import BOS_ID, write_tiny_llama

MSG = "Answer from the sources.\n\nQuestion: How long to bake?"

CASES = [  # (template, family, the exact prompt)
    (T.MISTRAL_V01, "mistral-v1", f"<s>[INST] {MSG} [/INST]"),
    (T.MISTRAL_V02_STRICT, "mistral-v1", f"<s>[INST] {MSG} [/INST]"),
    (T.MISTRAL_V02_SYSTEM, "mistral-v1", f"<s> [INST] {MSG} [/INST]"),
    (T.MISTRAL_V03_TOOLS, "mistral-v3", f"<s>[INST] {MSG}[/INST]"),
    (T.CHATML, "chatml", f"<|im_start|>user\n{MSG}<|im_end|>\n<|im_start|>assistant\n"),
]


@pytest.mark.parametrize(("template", "family", "prompt"), CASES,
                         ids=["v0.1", "v0.2-strict", "v0.2-system", "v0.3-tools", "chatml"])
def test_the_prompt_is_pinned_for_each_template(tmp_path, template, family, prompt):
    path = write_tiny_llama(tmp_path / "chat.gguf", name="tiny-chat", chat_template=template)
    info, tpl = check_chat_model(path)
    assert tpl.family == family
    assert tpl.render(MSG) == prompt
    chat = ChatModel(ChatSettings(str(path), context=512, answer_tokens=8))
    try:
        tokens = chat.prompt_tokens(MSG)
        if family.startswith("mistral"):  # the template's <s> is the BOS token, once
            assert tokens[0] == BOS_ID and tokens.count(BOS_ID) == 1
        text = "".join(chat.generate(tokens, 8))  # random weights: any text, but it streams
        assert isinstance(text, str)
    finally:
        chat.close()


def test_the_message_is_never_dropped_or_refused_as_a_system_role(tmp_path):
    """One user message: the strict template raises on a system message and llama-cpp-python's
    mistral formatter drops it; Semdex sends none."""
    for template, _, _ in CASES:
        path = write_tiny_llama(tmp_path / "c.gguf", name="tiny-chat", chat_template=template)
        _, tpl = check_chat_model(path)
        assert MSG in tpl.render(MSG)


@pytest.mark.parametrize(("template", "reason"), [
    (None, "has no chat template"),
    ("{% for m in messages %}{{ m['content'] }", "chat template cannot be read"),
    ("{{ raise_exception('Only system messages') }}", "fails on a question: Only system"),
    ("{{ bos_token }}[INST] [/INST]", "leaves out the question"),
])
def test_an_unusable_template_is_said_in_words(tmp_path, template, reason):
    path = write_tiny_llama(tmp_path / "bad.gguf", name="tiny-chat", chat_template=template)
    with pytest.raises(ChatModelError, match=reason):
        check_chat_model(path)
    with pytest.raises(ChatModelError, match=reason):  # before llama.cpp is asked to load it
        ChatModel(ChatSettings(str(path)))


def test_an_embedder_is_not_a_chat_model(starter_model):
    with pytest.raises(ChatModelError, match="encoder"):
        check_chat_model(starter_model)


def test_the_default_context_follows_the_version(tmp_path):
    """Mistral 7B Instruct v0.1 (rope base 1e4, 32k vocabulary) gets 4,096 tokens, as its
    sliding window allows; v0.2 (rope base 1e6) and others up to 8,192."""
    v01 = write_tiny_llama(tmp_path / "v01.gguf", name="tiny", chat_template=T.MISTRAL_V01,
                           n_ctx=32768)
    v02 = write_tiny_llama(tmp_path / "v02.gguf", name="tiny", chat_template=T.MISTRAL_V02_STRICT,
                           n_ctx=32768, rope_base=1e6)
    info1, tpl1 = check_chat_model(v01)
    info2, tpl2 = check_chat_model(v02)
    # (the tiny vocabulary is not 32,000 tokens: the v0.1 rule needs the real one)
    assert default_context(info2, tpl2) == 8192
    assert default_context(info1, tpl1) == 8192
    import dataclasses

    big = dataclasses.replace(info1, metadata={**info1.metadata,
                                               "tokenizer.ggml.tokens": ["x"] * 32000})
    assert default_context(big, tpl1) == 4096


def test_chat_models_are_found_and_judged_like_embedders(tmp_path, smollm2, starter_model):
    """The survey (semdex models, the picker) lists chat GGUFs apart: a usable one with its
    template, context, KV cache a token and fit; one whose template Jinja cannot read, and a
    text generator without one, each with the reason."""
    import shutil

    from desktop.models.discovery import Locations
    from desktop.models.survey import survey

    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(smollm2, folder / smollm2.name)
    write_tiny_llama(folder / "broken-chat.gguf", name="broken-chat",
                     chat_template="{% if %}")
    write_tiny_llama(folder / "base-model.gguf", name="plain-base-model")
    found = survey([folder, starter_model], starter_model, locations=Locations(),
                   chat_model=str(folder / smollm2.name))
    chats = {c.model.path.name: c.to_dict() for c in found.chats}
    smol = chats[smollm2.name]
    assert smol["usable"] and smol["chosen"] and smol["template"] == "chatml"
    assert smol["context"] == 8192 and smol["kv_bytes_per_token"] == 2 * 30 * 3 * 64 * 2
    assert smol["fit"] and smol["together"]  # beside the starter in use
    assert "cannot be read" in chats["broken-chat.gguf"]["problem"]
    assert "no chat template" in chats["base-model.gguf"]["problem"]
    assert not any(c.model.path == starter_model for c in found.chats)  # an embedder
