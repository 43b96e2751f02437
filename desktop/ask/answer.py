"""answer(): from a question to a cited answer, as a stream of events both faces show.

    Sources   the passages given to the model, numbered as the answer cites them
    Token     text of the answer, citations already checked (citations.py)
    Citation  a passage cited for the first time
    Refusal   no answer: nothing relevant was found (before the model is asked), or the model
              said the sources do not hold it
    Done      the whole answer, which passages it cited, how many citations were removed,
              and the timings (time to first token counted from the question)
    Error     what went wrong, in words

Retrieval is the person's own search: hybrid, with the active embedder (its question
instruction, for models that take one) and the person's filters. A gate refuses before the
model is called when nothing is close enough: no hit at all, or a best semantic similarity
under the model family's floor with no word of the question in the best passages, the
place where peers' assistants answer anyway from what the model knows. The cancel event is
checked on every token and during prompt processing.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from desktop.ask import prompt
from desktop.ask.chat_model import ChatCancelled, ChatModel, ChatModelError, GenerationStats
from desktop.ask.citations import CitationFilter, uncited_sentences
from desktop.ask.prompt import REFUSAL, Source
from desktop.search.query import NO_FILTER, Filters, Hit
from desktop.search.rank import search_vector

log = logging.getLogger(__name__)

K = 8  # passages retrieved for an answer, at most
PER_FILE = 2
# The gate: the best passage's cosine similarity to the question under which, unless the
# passage shares a word with it, the documents are taken not to hold an answer. Per family:
# instruction-tuned embedders score unrelated texts higher (bench/ask.py calibrates these).
GATE = {"default": 0.30, "e5-mistral": 0.55, "sfr-embedding-mistral": 0.55,
        "linq-embed-mistral": 0.55, "gte-qwen2": 0.5, "qwen3-embedding": 0.45, "e5": 0.78,
        "nomic-embed-text": 0.45, "bge": 0.55, "embeddinggemma": 0.45}
FLOOR = 0.12  # below this no shared word lets the question through
_STOP = frozenset("""a about above after again against all am an and any are as at be because
been before being below between both but by can could did do does doing down during each few
for from further had has have having he her here hers herself him himself his how i if in into
is it its itself just me more most my myself no nor not now of off on once only or other our
ours out over own same she should so some such than that the their theirs them then there
these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours does tell give show find explain describe
know""".split())


@dataclass(frozen=True)
class Sources:
    passages: list[Source]


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Citation:
    n: int


@dataclass(frozen=True)
class Refusal:
    reason: str
    before_model: bool  # True: the gate refused, the model was never asked


@dataclass(frozen=True)
class Done:
    answer: str
    cited: list[int]
    removed: int  # citation numbers the filter took out
    refused: bool
    stopped: str  # "eos", "length", "context", "cancelled", "refused"
    timings: dict = field(default_factory=dict)
    uncited_sentences: int = 0


@dataclass(frozen=True)
class Error:
    message: str


Event = Sources | Token | Citation | Refusal | Done | Error


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[^\W_]{3,}", text.lower()) if w not in _STOP}


def gate(question: str, best_similarity: float, hits: list[Hit], family: str) -> str | None:
    """Why the documents are taken not to hold an answer, or None to ask the model."""
    if not hits:
        return "nothing in your documents matches the question"
    floor = GATE.get(family, GATE["default"])
    if best_similarity >= floor:
        return None
    shared = content_words(question) & set().union(*(content_words(h.text) for h in hits[:3]))
    if shared and best_similarity >= FLOOR:
        return None
    return ("no passage in your documents is close to the question (best similarity "
            f"{best_similarity:.2f})")


def answer(question: str, engine, chat: ChatModel | Callable[[], ChatModel], *,
           filters: Filters = NO_FILTER, k: int = K, cancel: threading.Event | None = None,
           answer_tokens: int | None = None, task: str | None = "qa",
           instruction: str | None = None) -> Iterator[Event]:
    """Answer a question from the engine's index with the chat model (see the module). `chat`
    may be a function that loads it: called only once the gate has let the question through,
    so a question the documents cannot answer never waits for a model to load."""
    cancel = cancel or threading.Event()
    t0 = time.perf_counter()
    timings: dict = {}
    try:
        if not question.strip():
            yield Error("the question is empty")
            return
        embedder = engine.embedder
        vector = embedder.embed_queries([question], task, instruction)[0]
        store = engine.store
        best = search_vector(store, vector, question, mode="semantic", k=1, per_file=1,
                             filters=filters)
        hits = search_vector(store, vector, question, mode="hybrid", k=k, per_file=PER_FILE,
                             filters=filters)
        timings["retrieval_s"] = round(time.perf_counter() - t0, 3)
        similarity = best[0].score if best else 0.0
        why = gate(question, similarity, hits, embedder.profile.family)
        if why:
            yield Refusal(why, before_model=True)
            yield Done("", [], 0, True, "refused", timings)
            return
        if not isinstance(chat, ChatModel):
            t1 = time.perf_counter()
            chat = chat()
            timings["load_s"] = round(time.perf_counter() - t1, 3)
        if cancel.is_set():
            yield Done("", [], 0, False, "cancelled", timings)
            return
        budget = (chat.n_ctx - (answer_tokens or chat.settings.answer_tokens)
                  - prompt.MARGIN_TOKENS - chat.count(chat.template.render("")))
        candidates = [Source(i + 1, h.path, h.page, h.start, h.end, h.line_start, h.line_end,
                             h.text, h.kind) for i, h in enumerate(hits)]
        sources, text = prompt.fit(question, candidates, chat.count, budget)
        yield Sources(sources)
        tokens = chat.prompt_tokens(text)
        timings["prompt_tokens"] = len(tokens)
        stats = GenerationStats()
        cites = CitationFilter(len(sources))
        shown: list[str] = []
        stopped = "eos"
        try:
            for piece in chat.generate(tokens, answer_tokens, cancel, stats):
                out, new = cites.feed(piece)
                if out:
                    shown.append(out)
                    yield Token(out)
                for n in new:
                    yield Citation(n)
            out, new = cites.finish()
            if out:
                shown.append(out)
                yield Token(out)
            for n in new:
                yield Citation(n)
            stopped = stats.stopped or "eos"
        except ChatCancelled:
            stopped = "cancelled"
        full = "".join(shown).strip()
        refused = _is_refusal(full)
        if refused:
            yield Refusal("the model found no answer in the passages", before_model=False)
        timings.update(prefill_s=round(stats.prefill_s, 3),
                       first_token_s=(round(timings["retrieval_s"] + stats.first_token_s, 3)
                                      if stats.first_token_s is not None else None),
                       answer_tokens=stats.answer_tokens,
                       tokens_per_s=round(stats.tokens_per_s, 1),
                       total_s=round(time.perf_counter() - t0, 3))
        yield Done(full, list(cites.cited), cites.removed, refused, stopped, timings,
                   uncited_sentences(full) if not refused else 0)
    except ChatModelError as exc:  # a file that cannot answer: said, no traceback
        log.info("answering failed: %s", exc)
        yield Error(str(exc))
    except Exception as exc:  # noqa: BLE001 - every failure reaches the person as an event
        log.exception("answering failed")
        yield Error(str(exc) or type(exc).__name__)


def _is_refusal(text: str) -> bool:
    simple = re.sub(r"\W+", " ", text.lower()).strip()
    target = re.sub(r"\W+", " ", REFUSAL.lower()).strip()
    return simple.startswith(target) or (bool(simple) and target in simple and len(simple) <
                                         len(target) + 40)
