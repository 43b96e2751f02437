"""Which vector index, and which search settings: IVF_PQ against IVF_RQ at equal recall.

On a store that `bench/scale.py` wrote (its synthetic clustered vectors, its 50 queries and
their exact numpy top-10), the script trains each candidate index over the whole passages
table, in turn, with the partitions of the store's policy, and sweeps the search settings,
measuring per setting recall@10 (the first 10 of the 50 hits search asks for at least)
against the exact top-10 and the p50/p95 of the raw LanceDB vector query (dot metric, no
filter; 5 warm-ups). It then puts the store's own policy index back
(desktop/index/indexes.py), so the store is left as scale.py made it.

Usage:
    python bench/scale.py --sizes 384:100000               # makes bench/out/scale/384x100000
    python bench/ann_tune.py bench/out/scale/384x100000 [more stores...]

Prints a Markdown table per store, headed by the command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NPROBES = (5, 10, 20, 40)
REFINE = (None, 2, 5, 10)
LIMIT = 50  # what search asks the index for, at least (desktop/search/rank.py's pool)


def candidates(rows: int, dims: int) -> list[tuple[str, object]]:
    from lancedb.index import IvfPq, IvfRq, IvfSq

    from desktop.index import indexes

    parts = indexes.partitions(rows, dims)
    out = []
    if dims <= 1024:  # (product quantization of 4096 dimensions trains for too long here)
        out.append((f"IVF_PQ, {dims // 8} sub-vectors",
                    IvfPq(distance_type="dot", num_partitions=parts, num_sub_vectors=dims // 8)))
    out += [("IVF_RQ, 1 bit", IvfRq(distance_type="dot", num_partitions=parts, num_bits=1)),
            ("IVF_RQ, 4 bits", IvfRq(distance_type="dot", num_partitions=parts, num_bits=4)),
            ("IVF_SQ", IvfSq(distance_type="dot", num_partitions=parts))]
    return out


def measure(table, vectors: np.ndarray, truth: list[set], warm: int, nprobes: int,
            refine: int | None) -> dict:
    def run(q):
        s = table.search(q, vector_column_name="vector").distance_type("dot").limit(LIMIT)
        s = s.nprobes(nprobes)
        if refine:
            s = s.refine_factor(refine)
        return s.select(["path", "start", "_distance"]).to_arrow()

    for qi in range(warm):
        run(vectors[qi])
    ms, recall = [], []
    for j, qi in enumerate(range(warm, len(vectors))):
        t = time.perf_counter()
        res = run(vectors[qi])
        ms.append((time.perf_counter() - t) * 1000)
        got = set(list(zip(res.column("path").to_pylist(), res.column("start").to_pylist(),
                           strict=True))[:10])
        if truth[j]:
            recall.append(len(got & truth[j]) / len(truth[j]))
    ms.sort()
    return {"nprobes": nprobes, "refine": refine, "recall": round(statistics.fmean(recall), 4),
            "recall_min": round(min(recall), 2), "p50": round(statistics.median(ms), 2),
            "p95": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 2)}


def tune(size_dir: Path) -> dict:
    from desktop.index import indexes
    from desktop.index.store import Store

    spec = json.loads((size_dir / "spec.json").read_text())
    store = Store(size_dir / "db", f"bench{spec['dims']}", spec["dims"])
    table = store.chunks
    rows, dims = table.count_rows(), spec["dims"]
    vectors = np.load(size_dir / "query-vectors.npy")
    truth = [{tuple(x) for x in t}
             for t in json.loads((size_dir / "truth.json").read_text())["topk"]["none"]]
    out: dict = {"rows": rows, "dims": dims, "indexes": []}
    print(f"{rows:,} x {dims}", file=sys.stderr)
    for label, config in candidates(rows, dims):
        t = time.perf_counter()
        table.create_index("vector", config=config, name=indexes.VECTOR_INDEX, replace=True)
        build = time.perf_counter() - t
        size = next((getattr(i, "size_bytes", None) for i in table.list_indices()
                     if i.name == indexes.VECTOR_INDEX), None)
        sweep = [measure(table, vectors, truth, spec["warmup"], n, r)
                 for n in NPROBES for r in REFINE]
        print(f"  {label}: built in {build:.0f} s; " + ", ".join(
            f"{m['nprobes']}/{m['refine']}: {m['recall']:.3f} {m['p50']:.0f} ms"
            for m in sweep), file=sys.stderr)
        out["indexes"].append({"index": label, "build_s": round(build, 1), "size": size,
                               "sweep": sweep})
    # the store as scale.py left it: the policy's own index
    indexes.build_vector_index(table, dims, store.index_book)
    return out


def print_table(command: str, res: dict) -> None:
    print(f"\n`{command}`: {res['rows']:,} passages x {res['dims']}, recall@10 / p50 / p95 "
          f"(ms) of the vector query ({LIMIT} hits), per nprobes / refine factor:\n")
    heads = [f"{n} / {r or '-'}" for n in NPROBES for r in REFINE]
    print("| index | build | " + " | ".join(heads) + " |")
    print("|---|---|" + "---|" * len(heads))
    for ix in res["indexes"]:
        cells = [f"{m['recall']:.3f} / {m['p50']:.1f} / {m['p95']:.1f}" for m in ix["sweep"]]
        print(f"| {ix['index']} | {ix['build_s']:.0f} s | " + " | ".join(cells) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stores", nargs="+", type=Path, help="size folders scale.py made")
    args = ap.parse_args()
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    results = [tune(d) for d in args.stores]
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ann-tune-results.json").write_text(json.dumps(
        {"command": command, "results": results}, indent=2))
    for res in results:
        print_table(command, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
