"""Quantized models run, on every CPU: the real SmolLM2 Q4_1 decoder, MiniLM in Q8_0 and Q4_0
made from the starter, and the tiny LLaMA fixtures in Q4_0, Q4_1, Q8_0 and the K-quants.

On CPUs with Intel AMX (Xeon Sapphire Rapids and later) the llama.cpp that `pip install`
builds segfaulted on every one of these files (llama.cpp#20824): its AMX kernels take
quantized weights. Semdex keeps such weights out of them (desktop/models/llama_model.py).
The end-to-end runs go through the `semdex` command, a child process, so that a crash is a
failed test that names the file, not a test run that dies.

On a machine without AMX (the development machines here are AMD EPYC) the rule itself is
covered by the tests of `extra_bufts_safe` with llama.cpp's own feature strings, and the
switch by llama.cpp's load log (the repack buffer comes and goes with it); the rest runs the
same files through the same code on whatever CPU CI has, which is where the crash showed.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from desktop.models import llama_log
from desktop.models.catalogue import CATALOGUE
from desktop.models.convert_bert import convert_bert
from desktop.models.embedder import Embedder, EmbedderSettings, load_params
from desktop.models.gguf_info import read_model_info
from desktop.models.llama_model import AMX_TYPES, LlamaModel, extra_bufts_safe, has_amx, system_info
from desktop.models.model_check import check
from desktop.models.profiles import POOL_NONE, detect_profile
from desktop.models.starter import find_starter_weights
from tests.fixtures.quantize import quantize, tensor_types
from tests.fixtures.tiny_gguf import EOS_ID, write_tiny_llama

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["The zebra at the city zoo escaped on Tuesday morning.",
         "Our quarterly tax return is due at the end of April.",
         "A recipe for sourdough: feed the starter with rye flour.",
         "Crème brûlée, 寿司 and emoji 🍣 for dinner on Friday."]
QUERY = "when is the tax return due?"
# what each 64-wide tiny file holds: K-quants need rows of 256, so the tiny-256 file has them
TINY_KINDS = {"Q4_0": "tiny", "Q4_1": "tiny", "Q8_0": "tiny",
              "Q4_K_M": "tiny256", "Q5_K_M": "tiny256", "Q6_K": "tiny256"}


@pytest.fixture(scope="module", autouse=True)
def _quiet_llama():
    llama_log.install()  # the quantizer's chatter goes to logging, not the terminal


@pytest.fixture(scope="module")
def qdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("quantized")


@pytest.fixture(scope="module")
def minilm(qdir: Path, starter_model: Path) -> dict[str, Path]:
    """The starter as F32 (its own converter), then Q8_0 and Q4_0 by llama.cpp's quantizer."""
    f32 = convert_bert(find_starter_weights(), qdir / "all-MiniLM-L6-v2-F32.gguf", ftype="f32",
                       name="all-MiniLM-L6-v2")
    out = {"F16": starter_model, "F32": f32}
    for kind in ("Q8_0", "Q4_0"):
        out[kind] = quantize(f32, qdir / f"all-MiniLM-L6-v2-{kind}.gguf", kind)
    return out


@pytest.fixture(scope="module")
def tiny(qdir: Path) -> dict[str, Path]:
    sources = {"tiny": write_tiny_llama(qdir / "tiny-F32.gguf"),
               "tiny256": write_tiny_llama(qdir / "tiny256-F32.gguf", n_embd=256, n_ff=512)}
    out = {f"{name}-F32": path for name, path in sources.items()}
    for kind, src in TINY_KINDS.items():
        out[kind] = quantize(sources[src], qdir / f"{src}-{kind}.gguf", kind)
    return out


def _embed(path: Path, family: str, texts=TEXTS, **kw) -> np.ndarray:
    with Embedder(path, EmbedderSettings(family=family, **kw)) as e:
        return e.embed_tokens([e.encode_document(t) for t in texts])


def _semdex(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SEMDEX_DATA_DIR"}
    return subprocess.run([sys.executable, "-m", "desktop.cli", "--data-dir", str(data), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


# -- the rule ---------------------------------------------------------------------------------

AMX_BUILD = "CPU : AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 |"
PLAIN_BUILD = "CPU : AVX2 = 1 | AVX512 = 1 | REPACK = 1 |"


@pytest.mark.parametrize(("types", "info", "safe"), [
    ({0}, AMX_BUILD, True),  # F32 weights never reach the AMX buffer type
    ({0, 1}, AMX_BUILD, False),  # F16 does (its own path there); no other type takes it
    ({0, 30}, AMX_BUILD, True),  # BF16: not taken
    ({0, 2}, AMX_BUILD, False),  # Q4_0
    ({0, 3, 8}, AMX_BUILD, False),  # Q4_1 with Q8_0 (the SmolLM2 file)
    ({0, 12, 14}, AMX_BUILD, False),  # Q4_K_M: Q4_K and Q6_K
    ({0, 6}, AMX_BUILD, True),  # Q5_0: no AMX kernel
    ({0, 2, 12}, PLAIN_BUILD, True),  # no AMX in the build: repacking stays on
])
def test_extra_buffer_types_are_off_only_where_amx_would_take_the_weights(types, info, safe):
    assert extra_bufts_safe(types, info) is safe


def test_the_amx_types_are_llama_cpps():
    import gguf

    names = {gguf.GGMLQuantizationType(t).name for t in AMX_TYPES}
    assert names == {"F16", "Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"}


def test_this_build_loads_quantized_weights_safely(minilm, smollm2, caplog):
    """On this machine's build the rule is applied, and llama.cpp really gets the switch:
    its load log names the buffer types the weights went into."""
    amx = has_amx()
    for path, family in ((minilm["Q4_0"], "all-minilm"), (smollm2, "e5-mistral")):
        info = read_model_info(path)
        params = load_params(info, detect_profile(info, family), EmbedderSettings())
        assert params.extra_bufts is (not amx), (path.name, system_info())
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="llama_cpp"), \
                Embedder(path, EmbedderSettings(family=family)) as e:
            assert e.load_params == params
            assert e._llama.model_params.use_extra_bufts is params.extra_bufts
        buffers = [r.getMessage() for r in caplog.records if "model buffer size" in r.getMessage()]
        assert buffers, "llama.cpp printed no buffer sizes"
        assert not any(re.search(r"\bAMX\b", b) for b in buffers), buffers


@pytest.mark.skipif("REPACK = 1" not in system_info(), reason="this build repacks no weights")
def test_the_switch_reaches_llama_cpp(minilm, caplog):
    """With the extra buffer types on, Q4_0 weights are repacked for this CPU; off, they are
    not: proof that the parameter is the one llama.cpp reads."""
    seen = {}
    # on an AMX build "on" is the case that crashed: only "off" is loaded in this process
    for extra in (False,) if has_amx() else (True, False):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="llama_cpp"), \
                Embedder(minilm["Q4_0"], EmbedderSettings(extra_bufts=extra)):
            pass
        seen[extra] = " ".join(r.getMessage() for r in caplog.records)
    if not has_amx():
        assert "REPACK model buffer size" in seen[True]
    assert "model buffer size" in seen[False]
    assert "REPACK" not in seen[False] and "AMX model buffer" not in seen[False]


# -- MiniLM, quantized from the starter -------------------------------------------------------


def test_minilm_q8_0_and_q4_0_embed_like_the_starter(minilm):
    ref = _embed(minilm["F16"], "all-minilm")
    for kind, floor in (("F32", 0.999), ("Q8_0", 0.99), ("Q4_0", 0.9)):
        assert kind == "F32" or kind in tensor_types(minilm[kind])
        v = _embed(minilm[kind], "all-minilm")
        assert v.shape == (len(TEXTS), 384) and np.all(np.isfinite(v))
        cos = (v * ref).sum(axis=1)
        assert cos.min() > floor, (kind, cos)
        plain = _embed(minilm[kind], "all-minilm", extra_bufts=False)  # safe on any CPU
        assert ((v * plain).sum(axis=1)).min() > 0.999  # the switch changes no result


@pytest.mark.parametrize("kind", ["Q8_0", "Q4_0"])
def test_minilm_quantized_through_the_command(minilm, tmp_path, kind):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, text in enumerate(TEXTS):
        (docs / f"note{i}.txt").write_text(text + "\n", encoding="utf-8")
    data = tmp_path / "data"
    proc = _semdex("index", "--model", str(minilm[kind]), str(docs), "--json", data=data)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert json.loads(proc.stdout)["passages"] == len(TEXTS)
    proc = _semdex("search", "--mode", "semantic", QUERY, "--json", data=data)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    hits = json.loads(proc.stdout)["results"]
    assert Path(hits[0]["path"]).name == "note1.txt"


# -- SmolLM2 Q4_1: a real decoder, embedding with the E5-Mistral rules ------------------------


def test_smollm2_q4_1_embeds_as_a_decoder(smollm2):
    assert "Q4_1" in tensor_types(smollm2)
    with Embedder(smollm2, EmbedderSettings(family="e5-mistral")) as e:
        assert e.profile.pooling_name == "last" and e.dims == 576
        eos = e._eos
        assert eos is not None and eos == e._llama.token_eos()
        doc = e.encode_document(TEXTS[0])
        raw = e._tokenize(TEXTS[0], add_special=True)
        assert doc == raw + [eos] and doc.count(eos) == 1  # EOS exactly once, by id
        query = e.encode_query(QUERY)
        instructed = e._tokenize(e.profile.format_query(QUERY), add_special=True) + [eos]
        assert query == instructed and query.count(eos) == 1
        assert len(query) > len(e._tokenize(QUERY, add_special=True)) + 8  # the instruction
        assert e.encode_document(QUERY) == e._tokenize(QUERY, add_special=True) + [eos]
        docs = [e.encode_document(t) for t in TEXTS]
        first = e.embed_tokens(docs)
        again = e.embed_tokens(docs)
        q = e.embed_queries([QUERY])
    assert first.shape == (len(TEXTS), 576) and np.all(np.isfinite(first))
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert np.allclose(first, again, atol=1e-5)  # two runs agree
    assert len({tuple(np.round(v, 4)) for v in first}) == len(TEXTS)
    assert q.shape == (1, 576) and np.all(np.isfinite(q))
    # a second load of the file gives the same vectors, packed or one by one (packing changes
    # the shape of each matrix product, so the last digits may differ)
    one_by_one = np.vstack([_embed(smollm2, "e5-mistral", [t]) for t in TEXTS])
    assert (first * one_by_one).sum(axis=1).min() > 0.999


def test_smollm2_last_token_pooling_is_the_last_hidden_state(smollm2):
    """LAST pooling returns the final position's hidden state: the one that holds the EOS."""
    import llama_cpp

    with Embedder(smollm2, EmbedderSettings(family="e5-mistral")) as e:
        tokens = e.encode_document(TEXTS[1])
        pooled = e.embed_tokens([tokens])[0]
        params = e.load_params
    raw = LlamaModel(smollm2, type(params)(**{**params.__dict__, "pooling": POOL_NONE}))
    try:
        raw.batch.reset()
        raw.batch.add_sequence(tokens, 0, True)
        raw.ctx.decode(raw.batch)
        ptr = llama_cpp.llama_get_embeddings_ith(raw.ctx.ctx, len(tokens) - 1)
        last = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)),
                                     shape=(raw.n_embd(),)).copy()
    finally:
        raw.close()
    last /= np.linalg.norm(last)
    assert float(last @ pooled) > 0.9999


@pytest.mark.slow
def test_smollm2_through_the_command(smollm2, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zoo.txt").write_text(TEXTS[0] + "\n", encoding="utf-8")
    (docs / "tax.md").write_text("# Taxes\n\n" + TEXTS[1] + "\n", encoding="utf-8")
    data = tmp_path / "data"
    proc = _semdex("index", "--model", str(smollm2), "--family", "e5-mistral", str(docs),
                   "--json", data=data)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert json.loads(proc.stdout)["passages"] == 2
    for mode in ("semantic", "hybrid"):
        proc = _semdex("search", "--mode", mode, QUERY, "--json", data=data)
        assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
        assert len(json.loads(proc.stdout)["results"]) == 2


# -- the tiny fixtures, quantized -------------------------------------------------------------


@pytest.mark.parametrize("kind", list(TINY_KINDS))
def test_tiny_llama_quantized(tiny, kind):
    path = tiny[kind]
    assert kind.removesuffix("_M") in tensor_types(path)  # Q4_K_M holds Q4_K weights
    with Embedder(path, EmbedderSettings(family="e5-mistral")) as e:
        docs = [e.encode_document(t) for t in TEXTS]
        assert all(d[-1] == EOS_ID and d.count(EOS_ID) == 1 for d in docs)
        v = e.embed_tokens(docs)
        assert np.allclose(v, e.embed_tokens(docs), atol=1e-6)
    assert np.all(np.isfinite(v)) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    ref = _embed(tiny[f"{TINY_KINDS[kind]}-F32"], "e5-mistral")
    cos = (v * ref).sum(axis=1)
    assert cos.min() > (0.9 if kind == "Q8_0" else 0.3), cos  # random weights: coarse kinds drift


def test_every_recommended_quantisation_passes_the_trial_load(qdir, tmp_path):
    """The catalogue suggests only files this build runs: each quantisation it names, made
    on the tiny LLaMA, loads and embeds in the safe first load's child process."""
    src = write_tiny_llama(qdir / "catalogue-F32.gguf", n_embd=256, n_ff=512)
    kinds = {q.name for c in CATALOGUE for q in c.quants}
    assert kinds <= {"F16", "Q8_0", "Q4_K_M", "Q5_K_M", "Q6_K"}, kinds
    for kind in sorted(kinds):
        path = quantize(src, qdir / f"catalogue-{kind}.gguf", kind)
        info = read_model_info(path)
        result = check(info, detect_profile(info, "e5-mistral"), EmbedderSettings(),
                       records=tmp_path / "checks.json")
        assert result.ok, (kind, result.reason)
        assert result.dims == 256
