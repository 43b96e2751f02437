"""Retrieval quality and speed of the whole pipeline on BEIR NFCorpus.

The corpus is written out as one text file per document and indexed through everything a
person's folder goes through (scan, read, hash, extract, chunk, embed, store). Then:

* nDCG@10 per search mode on the test queries (documents ranked by their best passage);
* indexing throughput against raw llama-cpp-python embedding the very same passage texts with
  the same settings, in the same run (a ratio, so the noisy shared machine cancels out);
* query latency p50/p95 per mode, one query at a time, model loaded.

Usage:
    python bench/nfcorpus.py [--data ../shared/data/nfcorpus] [--model PATH] [--task qa]

Prints a Markdown table and writes bench/out/nfcorpus-results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from desktop.engine import Engine  # noqa: E402
from desktop.models.embedder import EmbedderSettings  # noqa: E402


def write_corpus(data: Path, out: Path, limit: int | None) -> Path:
    corpus = out / ("corpus" if limit is None else f"corpus-{limit}")
    marker = corpus / ".complete"
    if marker.exists():
        return corpus
    corpus.mkdir(parents=True, exist_ok=True)
    with open(data / "corpus.jsonl", encoding="utf-8") as f:
        for n, line in enumerate(f):
            if limit is not None and n >= limit:
                break
            doc = json.loads(line)
            text = (doc.get("title", "").strip() + "\n\n" + doc["text"].strip()).strip()
            (corpus / f"{doc['_id']}.txt").write_text(text + "\n", encoding="utf-8")
    marker.write_text("ok")
    return corpus


def load_eval(data: Path, doc_ids: set[str]) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(data / "qrels" / "test.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0 and did in doc_ids:
                qrels.setdefault(qid, {})[did] = int(score)
    queries = {}
    with open(data / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            if q["_id"] in qrels:
                queries[q["_id"]] = q["text"]
    return queries, qrels


def ndcg_at_10(ranked: list[str], rels: dict[str, int]) -> float:
    """trec_eval's ndcg_cut_10 (linear gains), as BEIR and MTEB report it."""
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(rels.values(), reverse=True)[:10]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def raw_embed(engine: Engine, texts: list[str], threads: int) -> tuple[float, np.ndarray]:
    """Plain llama-cpp-python, same file, pooling, batch sizes and threads as Semdex."""
    import llama_cpp

    emb = engine.embedder
    llm = llama_cpp.Llama(model_path=str(engine.model.path), embedding=True,
                          pooling_type=emb.profile.pooling, n_ctx=emb.batch_tokens,
                          n_batch=emb.batch_tokens, n_ubatch=emb.batch_tokens,
                          n_threads=threads, n_threads_batch=threads, n_gpu_layers=0,
                          verbose=False)
    docs = [emb.profile.format_document(t) for t in texts]
    t0 = time.perf_counter()
    vectors = llm.embed(docs, normalize=True)
    seconds = time.perf_counter() - t0
    llm.close()
    return seconds, np.asarray(vectors, dtype=np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "nfcorpus")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--model", help="GGUF embedder (default: the starter model)")
    ap.add_argument("--family")
    ap.add_argument("--task", default="qa", help="instruction preset for instruct models")
    ap.add_argument("--limit", type=int, help="index only the first N documents (smoke runs)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--gpu-layers", type=int, default=None)
    ap.add_argument("--skip-raw", action="store_true", help="skip the raw llama.cpp baseline")
    ap.add_argument("--latency-queries", type=int, default=100)
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    corpus = write_corpus(args.data, args.out, args.limit)
    data_dir = args.out / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    from desktop.models.embedder import default_threads

    threads = args.threads or default_threads()
    settings = EmbedderSettings(threads=threads, gpu_layers=args.gpu_layers)
    engine = Engine(data_dir, args.model, args.family, settings)
    print(f"model: {engine.model.info.name} [{engine.model.profile.family}] "
          f"{engine.model.path}", file=sys.stderr)

    t0 = time.perf_counter()
    load_s = time.perf_counter()
    engine.embedder  # noqa: B018 - load the weights outside the timed indexing
    load_s = time.perf_counter() - load_s
    t0 = time.perf_counter()
    last = None
    for prog in engine.index([str(corpus)]):
        last = prog
        if prog.phase == "indexing" and prog.files_done % 500 == 0 and prog.files_done:
            print(f"  {prog.files_done}/{prog.files_total} files, {prog.tokens_per_s:.0f} tok/s",
                  file=sys.stderr)
    index_s = time.perf_counter() - t0
    assert last is not None and last.phase == "done", last
    print(f"semdex index: {index_s:.1f} s, {last.chunks} passages, {last.tokens} tokens, "
          f"{last.files_failed} failed", file=sys.stderr)

    results: dict = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "model": engine.model.info.name, "family": engine.model.profile.family,
        "threads": threads, "documents": last.files_done, "passages": last.chunks,
        "tokens": last.tokens, "chunk_tokens": engine.embedder.chunk_tokens,
        "model_load_s": round(load_s, 2), "semdex_index_s": round(index_s, 2),
        "semdex_tokens_per_s": round(last.tokens / index_s, 1),
    }

    if not args.skip_raw:
        tbl = engine.store.chunks.to_arrow().select(["id", "text", "vector"]).sort_by("id")
        texts = tbl.column("text").to_pylist()
        raw_s, raw_vecs = raw_embed(engine, texts, threads)
        ours = np.stack(tbl.column("vector").to_numpy(zero_copy_only=False))
        agree = float(np.min(np.sum(ours * raw_vecs, axis=1)))
        results.update(raw_embed_s=round(raw_s, 2),
                       raw_tokens_per_s=round(last.tokens / raw_s, 1),
                       throughput_ratio=round(raw_s / index_s, 3),
                       min_cosine_semdex_vs_raw=round(agree, 5))
        print(f"raw llama-cpp-python embed: {raw_s:.1f} s; ratio {raw_s / index_s:.3f}; "
              f"min cosine vs Semdex vectors {agree:.5f}", file=sys.stderr)

    doc_ids = {p.stem for p in corpus.glob("*.txt")}
    queries, qrels = load_eval(args.data, doc_ids)
    qids = sorted(queries)
    texts = [queries[q] for q in qids]
    results["queries"] = len(qids)
    for mode in ("semantic", "keyword", "hybrid"):
        scores = []
        hits_all = engine.search_many(texts, mode=mode, task=args.task, k=10, per_file=1)
        for qid, hits in zip(qids, hits_all, strict=True):
            ranked = [Path(h.path).stem for h in hits]
            scores.append(ndcg_at_10(ranked, qrels[qid]))
        results[f"ndcg10_{mode}"] = round(statistics.fmean(scores), 4)
        lat = []
        for q in texts[: args.latency_queries]:
            t = time.perf_counter()
            engine.search(q, mode=mode, task=args.task, k=10, per_file=3)
            lat.append((time.perf_counter() - t) * 1000)
        lat.sort()
        results[f"latency_ms_{mode}"] = {
            "p50": round(statistics.median(lat), 1),
            "p95": round(lat[min(len(lat) - 1, int(len(lat) * 0.95))], 1)}
        print(f"{mode}: nDCG@10 {results[f'ndcg10_{mode}']:.4f}, latency "
              f"{results[f'latency_ms_{mode}']}", file=sys.stderr)
    engine.close()

    out_json = args.out / "nfcorpus-results.json"
    out_json.write_text(json.dumps(results, indent=2))
    print(f"\n`{results['command']}` ({results['model']}, {threads} threads, "
          f"{results['documents']} documents, {results['passages']} passages)\n")
    print("| mode | nDCG@10 | query p50 | query p95 |\n|---|---|---|---|")
    for mode in ("semantic", "keyword", "hybrid"):
        lat = results[f"latency_ms_{mode}"]
        print(f"| {mode} | {results[f'ndcg10_{mode}']:.4f} | {lat['p50']} ms | {lat['p95']} ms |")
    if "throughput_ratio" in results:
        print(f"\nIndexing: Semdex {results['semdex_tokens_per_s']:,.0f} tok/s end to end "
              f"({index_s:.0f} s), raw llama-cpp-python {results['raw_tokens_per_s']:,.0f} tok/s "
              f"on the same passages ({results['raw_embed_s']:.0f} s): ratio "
              f"{results['throughput_ratio']:.2f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("SEMDEX_MODEL_CACHE", str(ROOT / "bench" / "out" / "models"))
    sys.exit(main())
