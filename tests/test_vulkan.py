"""A GPU backend gives the CPU's vectors: the starter model on a Vulkan device against the same
model on the processor, passage by passage (cosine >= 0.999), through Semdex's own loading
(one device named to llama.cpp, every layer on it).

It runs only where the installed llama.cpp has a Vulkan device: a build made with
`-DGGML_VULKAN=ON` (the installers' default, installers/backends.py) on a machine with a
Vulkan driver. Mesa's lavapipe runs Vulkan on the processor, so no GPU is needed; llama.cpp
hides such a device unless GGML_VK_VISIBLE_DEVICES names it (the build's smoke test does). CI's
plain CPU build skips it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop.models import devices
from desktop.models.embedder import Embedder, EmbedderSettings

NFCORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "nfcorpus" / "corpus.jsonl"
FALLBACK = ["The zebra at the city zoo escaped on Tuesday morning.",
            "Our quarterly tax return is due at the end of April.",
            "Crème brûlée, 寿司 and emoji 🍣 for dinner on Friday."]


def _vulkan_devices() -> list[devices.Device]:
    found, _ = devices.list_devices()
    return [d for d in found if d.backend == "Vulkan"]


def _passages(n: int = 48) -> list[str]:
    if not NFCORPUS.is_file():
        return FALLBACK
    out = []
    with NFCORPUS.open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            out.append(f"{doc.get('title', '')}. {doc['text']}"[:700])
            if len(out) == n:
                break
    return out


@pytest.mark.skipif(not _vulkan_devices(), reason="no Vulkan device in this llama.cpp build")
def test_vulkan_gives_the_cpus_vectors(starter_model):
    texts = _passages()
    vk = _vulkan_devices()[0]
    with Embedder(starter_model, EmbedderSettings(device="cpu")) as emb:
        assert emb.load_params.gpu_layers == 0 and emb.load_params.device is None
        want = emb.embed_tokens([emb.encode_document(t) for t in texts])
    with Embedder(starter_model, EmbedderSettings(device=vk.name, gpu_layers=-1)) as emb:
        assert (emb.load_params.device, emb.load_params.backend) == (vk.name, "Vulkan")
        assert emb.fallback_note == ""
        got = emb.embed_tokens([emb.encode_document(t) for t in texts])
    cos = (got * want).sum(axis=1)
    print(f"\n{vk.label()}: {len(texts)} passages, lowest cosine to the CPU's {cos.min():.6f}")
    assert cos.min() >= 0.999, cos
