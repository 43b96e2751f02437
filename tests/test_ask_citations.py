"""Citations checked while streaming, the prompt's budget and the retrieval gate: pure parts of
Ask, tested without a model."""

from __future__ import annotations

import re

import pytest

from desktop.ask.answer import _is_refusal, content_words, gate
from desktop.ask.citations import CitationFilter, strip_markers, uncited_sentences
from desktop.ask.prompt import INSTRUCTIONS, REFUSAL, Source, fit, message
from desktop.search.query import Hit


def stream(pieces: list[str], k: int) -> tuple[str, CitationFilter, list[int]]:
    f = CitationFilter(k)
    shown, new = [], []
    for p in pieces:
        out, n = f.feed(p)
        # nothing shown is ever taken back: no half-written citation reaches the person
        assert not re.search(r"\[[\d\s,;]*$", out), out
        shown.append(out)
        new += n
    out, n = f.finish()
    shown.append(out)
    return "".join(shown), f, new + n


def test_valid_citations_pass_and_others_are_removed_and_counted():
    text, f, new = stream(["Paris is the capital [1]. It has", " museums [2, 7][0]. See [",
                           "3][source_id]."], k=3)
    assert text == "Paris is the capital [1]. It has museums [2]. See [3]."
    assert f.cited == [1, 2, 3] and new == [1, 2, 3]
    assert f.removed == 3  # 7, 0 and the placeholder
    assert "[2, 7][0]" in f.raw_text  # what the model wrote is kept for the record


@pytest.mark.parametrize("pieces", [
    ["Bake it [", "1", "]."],
    ["Bake it [1", "]", "."],
    ["Bake it ", "[", "1]", "."],
    ["Bake it [1]", "."],
])
def test_a_bracket_split_across_tokens_is_held_until_it_closes(pieces):
    text, f, new = stream(pieces, k=2)
    assert text == "Bake it [1]." and new == [1] and f.removed == 0


def test_lists_ranges_and_repeats():
    text, f, _ = stream(["A [1][2]. B [2; 1]. C [1 and 3]. D [1-2]."], k=3)
    assert text == "A [1][2]. B [2][1]. C [1][3]. D ."
    assert f.cited == [1, 2, 3] and f.removed == 1  # the range is a placeholder, not a list


def test_brackets_that_are_not_citations_stay():
    text, f, _ = stream(["The array a[i] holds [sic] values; see [Appendix B]."], k=2)
    assert text == "The array a[i] holds [sic] values; see [Appendix B]." and f.removed == 0


def test_a_citation_cut_off_at_the_end_is_not_shown():
    text, f, _ = stream(["It rises overnight [1", ", 2"], k=2)
    assert text == "It rises overnight " and f.cited == [] and f.removed == 1


def test_markers_inside_passages_are_not_citations():
    assert strip_markers("as shown earlier [12] and [3, 4]") == "as shown earlier (12) and (3, 4)"


def test_uncited_sentences_are_counted():
    assert uncited_sentences("It rises overnight [1]. Then bake it hot. Serve it warm [2].") == 1


def _src(i: int, text: str, page: int | None = None) -> Source:
    return Source(i, f"/docs/file{i}.pdf" if page else f"/docs/file{i}.txt", page, 0,
                  len(text), 3, 9, text, "pdf" if page else "text")


def words(text: str) -> int:  # a tokenizer stand-in: a token a word
    return len(text.split())


def test_the_prompt_puts_the_question_before_and_after_the_numbered_sources():
    sources, text = fit("How long to bake?", [_src(1, "Bake 40 minutes [3].", page=2),
                                              _src(2, "Knead it.")], words, 10_000)
    assert [s.n for s in sources] == [1, 2]
    assert text == (f"{INSTRUCTIONS}\n\nQuestion: How long to bake?\n\nSources:\n\n"
                    "[1] (file1.pdf, page 2)\nBake 40 minutes (3).\n\n"
                    "[2] (file2.txt, lines 3-9)\nKnead it.\n\nQuestion: How long to bake?")
    assert REFUSAL in INSTRUCTIONS


def test_sources_fit_the_budget_best_first():
    long = " ".join(["word"] * 300)
    cands = [_src(1, long), _src(2, long), _src(3, "short one")]
    base = words(message("q", []))
    sources, text = fit("q", cands, words, base + 620)  # two of 308, then 10 more: no
    assert [s.n for s in sources] == [1, 2] and words(text) <= base + 620
    sources, _ = fit("q", cands, words, base + 630)
    assert [s.n for s in sources] == [1, 2, 3]
    sources, text = fit("q", cands, words, base + 320)
    assert [s.n for s in sources] == [1]  # the third would fit, but ranks below the second
    # the best passage alone does not fit: its start, cut, and never over the budget
    sources, text = fit("q", [_src(1, ". ".join(["a b c d e"] * 200))], words, base + 120)
    assert len(sources) == 1 and sources[0].text.endswith("…")
    assert words(text) <= base + 120


def _hit(text: str, score: float = 0.5) -> Hit:
    return Hit("/docs/a.txt", score, None, 0, 1, 1, 1, text, "text")


def test_the_gate_refuses_before_the_model_is_asked():
    assert gate("anything", 0.9, [], "all-minilm") == (
        "nothing in your documents matches the question")
    assert gate("how long to bake bread", 0.62, [_hit("x")], "all-minilm") is None
    # low similarity, but a shared content word: asked
    assert gate("sourdough timing", 0.2, [_hit("the sourdough rises")], "all-minilm") is None
    # low similarity and nothing shared (stop words do not count): refused
    why = gate("who won the world cup", 0.05, [_hit("the sourdough rises")], "all-minilm")
    assert why and "best similarity 0.05" in why
    # instruction-tuned embedders score unrelated text higher: their floor is higher
    assert gate("who won the cup", 0.5, [_hit("bread")], "e5-mistral") is not None
    assert content_words("What is THE capital of France?") == {"capital", "france"}


def test_the_models_own_refusal_is_recognised():
    assert _is_refusal(REFUSAL)
    assert _is_refusal("I could not find this in your documents")
    assert not _is_refusal("Bake it for 40 minutes [1].")
