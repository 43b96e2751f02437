"""The remote embedder (--embed-url) against a real server on loopback: llama-cpp-python's own
OpenAI-compatible server (`python -m llama_cpp.server`, the [server] extra of the test
install) serving the starter GGUF on 127.0.0.1. Its vectors must equal the in-process ones,
through the whole pipeline (index, search, status) and the family rules."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from desktop.engine import Engine
from desktop.models.embedder import Embedder, EmbedderSettings
from desktop.models.remote import EmbedServerError, RemoteEmbedder
from desktop.models.server_url import endpoint

NFCORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "nfcorpus" / "corpus.jsonl"

TEXTS = [
    "Breast cancer cells treated with statins showed reduced growth in the laboratory.",
    "The quick brown fox jumps over the lazy dog; its den is under the old oak tree.",
    "Ünïcode — quotes “like these”, tabs\tand    spaces, and a 3.5% figure (n=1,024).",
    "def cosine(a, b):\n    return a @ b / (norm(a) * norm(b))\n",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _texts(n: int) -> list[str]:
    """Real passages no one here wrote: NFCorpus abstracts, where the data set is at hand."""
    out = list(TEXTS)
    if NFCORPUS.is_file():
        with NFCORPUS.open(encoding="utf-8") as fh:
            for line in fh:
                out.append(json.loads(line)["text"][:1200])
                if len(out) >= n:
                    break
    return out


@pytest.fixture(scope="module")
def server(starter_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """`python -m llama_cpp.server` with the starter GGUF, on 127.0.0.1 only."""
    pytest.importorskip("uvicorn", reason="the test extra installs llama-cpp-python[server]")
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(starter_model),
           "--embedding", "true", "--n_ctx", "512", "--n_batch", "512", "--n_ubatch", "512",
           "--n_threads", "2", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/models", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("llama_cpp.server did not start:\n" + log.read_text()[-3000:])
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_endpoint_accepts_what_people_type():
    assert endpoint("http://gpu:8080") == "http://gpu:8080/v1/embeddings"
    assert endpoint("http://gpu:8080/v1/") == "http://gpu:8080/v1/embeddings"
    assert endpoint(" https://gpu/llm/v1/embeddings ") == "https://gpu/llm/v1/embeddings"
    for bad in ("gpu:8080", "ftp://gpu/v1", "http://", ""):
        with pytest.raises(ValueError, match="http:// or https://"):
            endpoint(bad)


@pytest.mark.slow
def test_remote_vectors_equal_the_in_process_ones(server, starter_model):
    texts = _texts(64)
    with Embedder(starter_model) as local, RemoteEmbedder(starter_model, server) as remote:
        assert remote.dims == local.dims == 384
        assert remote.load_params is None  # no weights loaded here
        docs = [local.encode_document(t[:900]) for t in texts]
        docs = [d for d in docs if len(d) <= local.batch_tokens]
        a = local.embed_tokens(docs)
        b = remote.embed_tokens(docs)
        queries = ["statins and breast cancer", "what does a fox jump over?"]
        qa, qb = local.embed_queries(queries), remote.embed_queries(queries)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)  # normalised here
    cos = np.sum(a * b, axis=1)
    print(f"cosine remote vs in-process over {len(docs)} passages: min {cos.min():.6f}")
    assert cos.min() >= 0.999, cos.min()
    assert np.sum(qa * qb, axis=1).min() >= 0.999


def test_server_text_round_trips_to_the_same_tokens(starter_model, smollm2):
    """What the server is sent is what this machine would decode: the text, tokenized as
    llama-server does (special tokens added and parsed), gives back the very token sequence,
    for an encoder (CLS ... SEP, both added by the server) and for a decoder family whose
    EOS Semdex appends (written as its token text)."""
    texts = _texts(24)
    for model, family in ((starter_model, None), (smollm2, "e5-mistral")):
        with RemoteEmbedder(model, "http://127.0.0.1:9/v1",
                            EmbedderSettings(family=family)) as r:
            seqs = [r.encode_document(t[:600]) for t in texts]
            seqs += [r.encode_query("statins and breast cancer")]
            for seq in seqs:
                text = r.text_of(seq)
                again = r._tokenize(text, add_special=True, parse_special=True)
                assert r._finish(again) == seq, (family, text[:80])
            q = r.text_of(r.encode_query("statins"))
            if family:  # the instruction and the EOS are in the text the server gets
                eos = r.text_of([r._eos])  # SmolLM2's EOS: <|im_end|>
                assert eos == "<|im_end|>"
                assert q.startswith("Instruct: ") and q.endswith("\nQuery: statins" + eos), q
            else:  # no CLS or SEP: the server's tokenizer adds them
                assert q.strip() == "statins", q


@pytest.mark.slow
def test_index_and_search_through_the_server(server, starter_model, tmp_path):
    """The whole pipeline with --embed-url: the same index key (table) as in-process, and a
    search made in-process finds what the server's vectors indexed."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "statins.txt").write_text(TEXTS[0] + "\n" * 3 + "Cholesterol and LDL. " * 20)
    (docs / "fox.md").write_text("# Fox\n\n" + TEXTS[1])
    data = tmp_path / "data"
    remote = Engine(data, settings=EmbedderSettings(embed_url=server))
    with remote:
        for _ in remote.index([docs]):
            pass
        st = remote.status()
        assert st["model"]["embed_url"] == server
        assert st["files"] == 2
        key = remote.store.key
        hits = remote.search("where does the fox live", mode="semantic", k=3)
        assert hits and Path(hits[0].path).name == "fox.md"
    with Engine(data) as local:  # the same table, searched with the model in-process
        assert local.store.key == key
        hits = local.search("statin drugs and tumour growth", mode="semantic", k=3)
        assert Path(hits[0].path).name == "statins.txt"
        assert hits[0].score > 0.4


def test_an_unreachable_server_is_a_clear_error(starter_model, tmp_path):
    port = _free_port()  # nobody listens there
    with RemoteEmbedder(starter_model, f"http://127.0.0.1:{port}/v1") as r:
        with pytest.raises(EmbedServerError, match="cannot be reached"):
            r.embed_queries(["anything"])


@pytest.mark.slow
def test_cli_index_with_embed_url_and_a_wrong_model_on_the_server(server, starter_model,
                                                                 smollm2, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(TEXTS[0])
    env = {**os.environ, "SEMDEX_DATA_DIR": str(tmp_path / "data")}
    run = [sys.executable, "-m", "desktop", "index", str(docs), "--embed-url", server]
    ok = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    st = subprocess.run([sys.executable, "-m", "desktop", "status", "--embed-url", server],
                        env=env, capture_output=True, text=True, timeout=120)
    assert f"from the embedding server {server}/embeddings" not in st.stdout
    assert f"from the embedding server {server}" in st.stdout
    # a model that is not the one served: refused with the reason, nothing indexed with it
    bad = subprocess.run([*run, "--model", str(smollm2), "--family", "e5-mistral"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    assert "serves another model" in bad.stderr and "Traceback" not in bad.stderr
