"""A chat model's template, read from its GGUF and checked before llama.cpp ever sees it.

A chat GGUF carries its prompt format as a Jinja template (`tokenizer.chat_template`). Semdex
renders it itself, with the same renderer llama-cpp-python's chat completion uses
(`Jinja2ChatFormatter`: a sandboxed Jinja environment, trim_blocks and lstrip_blocks), and
sends exactly one user message: Mistral's templates have no system role (the strict one
raises on it, the early one's formatter in llama-cpp-python silently drops it), so the
instructions go in that one message, which every template accepts. A template Jinja cannot
parse, one that fails on a single user message, or none at all makes the model unusable for
Ask, said in words; nothing of it reaches llama.cpp.

The family is told apart as llama.cpp's own `llm_chat_detect_template` does, by strings in
the template; it decides the default context (Mistral 7B Instruct v0.1 was trained at 8k with a
4k sliding window, of which llama.cpp can use about 4k; v0.2 and v0.3 at 32k).
"""

from __future__ import annotations

from dataclasses import dataclass

from desktop.models.gguf_info import ModelInfo, as_int

TEMPLATE_KEY = "tokenizer.chat_template"


class ChatTemplateError(Exception):
    """The model's chat template is missing or unusable; the message says why."""


@dataclass(frozen=True)
class ChatTemplate:
    source: str
    family: str  # "mistral-v1" (v0.1/v0.2), "mistral-v3", "mistral-v3-tekken", "chatml",
    #              "llama3", "gemma", "other"
    bos: str
    eos: str

    def render(self, user_message: str) -> str:
        """The prompt for one user message, ready for the assistant's answer."""
        return _formatter(self.source, self.bos, self.eos)(
            messages=[{"role": "user", "content": user_message}]).prompt


def family_of(template: str) -> str:
    """The template's family, by the strings llama.cpp's llm_chat_detect_template looks for
    (src/llama-chat.cpp): Mistral's official v1, v3, v3-tekken and v7 templates, and the early
    [INST] templates (v0.1's, v0.2's strict one) that render the v1 way."""
    if "[SYSTEM_PROMPT]" in template:
        return "mistral-v7"
    if "[INST]" in template:
        if "[AVAILABLE_TOOLS]" in template or "' [INST] ' + system_message" in template:
            if " [INST]" in template:
                return "mistral-v1"
            return "mistral-v3-tekken" if '"[INST]"' in template else "mistral-v3"
        return "mistral-v1" if " [/INST]" in template else "llama2"
    if "<|im_start|>" in template:
        return "chatml"
    if "<|start_header_id|>" in template:
        return "llama3"
    if "<start_of_turn>" in template:
        return "gemma"
    return "other"


def _token_text(info: ModelInfo, key: str, default: str) -> str:
    tokens = info.get("tokenizer.ggml.tokens")
    tid = as_int(info.get(key))
    if isinstance(tokens, list) and tid is not None and 0 <= tid < len(tokens):
        value = tokens[tid]
        return value if isinstance(value, str) else default
    return default


def _formatter(source: str, bos: str, eos: str):
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    return Jinja2ChatFormatter(template=source, eos_token=eos, bos_token=bos,
                               add_generation_prompt=True)


def read_template(info: ModelInfo) -> ChatTemplate:
    """The model's chat template, checked: parsed by Jinja and rendered once for a single
    user message. Raises ChatTemplateError with the reason."""
    source = info.get(TEMPLATE_KEY)
    if not isinstance(source, str) or not source.strip():
        raise ChatTemplateError("it has no chat template (tokenizer.chat_template): it is "
                                "not a chat model, or was converted without one")
    bos = _token_text(info, "tokenizer.ggml.bos_token_id", "<s>")
    eos = _token_text(info, "tokenizer.ggml.eos_token_id", "</s>")
    try:
        formatter = _formatter(source, bos, eos)
    except Exception as exc:  # noqa: BLE001 - jinja2.TemplateSyntaxError and kin
        raise ChatTemplateError(f"its chat template cannot be read: {_why(exc)}") from None
    probe = "Semdex checks the template. Q?"
    try:
        prompt = formatter(messages=[{"role": "user", "content": probe}]).prompt
    except Exception as exc:  # noqa: BLE001 - raise_exception() in the template, or others
        raise ChatTemplateError(f"its chat template fails on a question: {_why(exc)}") from None
    if probe not in prompt:
        raise ChatTemplateError("its chat template leaves out the question")
    return ChatTemplate(source, family_of(source), bos, eos)


def _why(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    line = getattr(exc, "lineno", None)
    return f"{text} (line {line})" if line and "line" not in text else text


def default_context(info: ModelInfo, template: ChatTemplate) -> int:
    """The context a chat model is loaded with unless set: its training length, at most 8,192
    (1 GiB of KV cache for Mistral 7B), and 4,096 for Mistral 7B Instruct v0.1 (a 4k sliding
    window that llama.cpp does not apply: beyond it the model degrades, llama.cpp#3371)."""
    trained = info.context_length or 4096
    if template.family == "mistral-v1" and (info.vocab_size or 0) == 32000:
        base = info.arch_get("rope.freq_base")
        if base is None or float(base) < 1e5:  # v0.2 moved the rope base to 1e6
            return min(trained, 4096)
    return max(512, min(trained, 8192))
