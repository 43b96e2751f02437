"""Discovery finds models where Hugging Face, LM Studio, GPT4All and Ollama keep them.

A fake home folder holds each tool's real layout (HF snapshot symlinks into blobs, an Ollama
manifest naming a sha256 blob, ...) with real GGUF files: a copy of the starter model and tiny
LLaMA files written by the fixtures, plus broken files, a chat model, split parts, a duplicate
reached through a symlink and a symlink loop.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from desktop.models.catalogue import CATALOGUE, by_key, find_entry, missing_from
from desktop.models.discovery import Locations, default_locations, discover, walk_gguf
from tests.fixtures.tiny_gguf import write_not_gguf, write_tiny_llama, write_truncated


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def fake_home(tmp_path_factory: pytest.TempPathFactory, starter_model: Path) -> dict:
    home = tmp_path_factory.mktemp("home")
    made: dict = {"home": home}

    # Hugging Face cache: a snapshot symlink into blobs/, refs/main, and a broken download.
    repo = home / ".cache/huggingface/hub/models--Qwen--Qwen3-Embedding-0.6B-GGUF"
    tmp = write_tiny_llama(home / "qwen.tmp", name="Qwen3-Embedding-0.6B", seed=1)
    digest = _sha256(tmp)
    (repo / "blobs").mkdir(parents=True)
    blob = repo / "blobs" / digest
    tmp.rename(blob)
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "Qwen3-Embedding-0.6B-Q8_0.gguf").symlink_to(Path("../../blobs") / digest)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    broken = home / ".cache/huggingface/hub/models--someone--half-downloaded/snapshots/r1"
    broken.mkdir(parents=True)
    (broken / "model.gguf").symlink_to(Path("../../blobs/0123"))
    made["hf_blob"] = blob

    # LM Studio: PUBLISHER/REPO/file, plus a downloadsFolder holding a chat model.
    lms = home / ".lmstudio/models/second-state/All-MiniLM-L6-v2-Embedding-GGUF"
    lms.mkdir(parents=True)
    made["lms_starter"] = lms / "all-MiniLM-L6-v2-F16.gguf"
    shutil.copyfile(starter_model, made["lms_starter"])
    downloads = home / "lms-downloads"
    write_tiny_llama(downloads / "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/smollm2.gguf",
                     name="SmolLM2-135M-Instruct", seed=2)
    (home / ".lmstudio/settings.json").write_text(json.dumps({"downloadsFolder": str(downloads)}))

    # GPT4All: a flat folder with a file that is not a GGUF and a cut-off download.
    gpt = home / ".local/share/nomic.ai/GPT4All"
    write_not_gguf(gpt / "nomic-embed-text-v1.5.f16.gguf")
    write_truncated(made["lms_starter"], gpt / "all-MiniLM-L6-v2.partial.gguf", 0.5)

    # Ollama: a manifest whose model layer names a sha256 blob; a garbage manifest beside it.
    ollama = home / ".ollama/models"
    model_blob_src = write_tiny_llama(home / "ollama.tmp", name="Qwen3-Embedding-0.6B", seed=3)
    hexd = _sha256(model_blob_src)
    (ollama / "blobs").mkdir(parents=True)
    ollama_blob = ollama / "blobs" / f"sha256-{hexd}"
    model_blob_src.rename(ollama_blob)
    lic = ollama / "blobs" / ("sha256-" + "ab" * 32)
    lic.write_text("Apache-2.0")
    manifest = ollama / "manifests/registry.ollama.ai/library/qwen3-embedding/0.6b"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": "sha256:" + "cd" * 32, "size": 10},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{hexd}",
             "size": ollama_blob.stat().st_size},
            {"mediaType": "application/vnd.ollama.image.license", "digest": "sha256:" + "ab" * 32,
             "size": 10},
        ]}))
    (manifest.parent / "latest").write_text("{not json")
    made["ollama_blob"] = ollama_blob

    # The person's own folder: split parts, a symlink to the LM Studio copy, a loop.
    mine = home / "my-models"
    write_tiny_llama(mine / "e5-mistral-tiny-00001-of-00002.gguf", seed=4)
    shutil.copyfile(mine / "e5-mistral-tiny-00001-of-00002.gguf",
                    mine / "e5-mistral-tiny-00002-of-00002.gguf")
    write_tiny_llama(mine / "deep/a/orphan-00002-of-00003.gguf", seed=5)
    (mine / "starter-link.gguf").symlink_to(made["lms_starter"])
    (mine / "deep/loop").symlink_to(mine)
    (mine / "self-loop.gguf").symlink_to(mine / "self-loop.gguf")
    made["mine"] = mine

    made["semdex"] = starter_model.parent
    made["env"] = {"SEMDEX_MODEL_CACHE": str(starter_model.parent)}
    return made


@pytest.fixture(scope="module")
def found(fake_home: dict) -> list:
    where = default_locations(fake_home["home"], fake_home["env"], platform="linux")
    return discover([fake_home["mine"]], locations=where)


def _by(found: list, source: str, name: str):
    hits = [m for m in found if m.source == source and m.name == name]
    assert len(hits) == 1, [(m.source, m.name) for m in found]
    return hits[0]


def test_hugging_face_snapshot_is_named_org_repo_and_resolved_to_its_blob(found, fake_home):
    m = _by(found, "hf", "Qwen/Qwen3-Embedding-0.6B-GGUF")
    assert m.usable and m.family == "qwen3-embedding"
    assert m.path == fake_home["hf_blob"].resolve()
    assert m.location.name == "Qwen3-Embedding-0.6B-Q8_0.gguf" and m.location.is_symlink()


def test_broken_hf_link_is_reported_not_fatal(found):
    m = _by(found, "hf", "someone/half-downloaded")
    assert not m.usable and "broken link" in m.problem


def test_lm_studio_models_and_downloads_folder(found):
    m = _by(found, "lmstudio", "second-state/All-MiniLM-L6-v2-Embedding-GGUF")
    assert m.usable and m.family == "all-minilm" and m.info.embedding_length == 384
    chat = _by(found, "lmstudio", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF")
    assert not chat.usable and chat.info is not None
    assert "chat or text-generation model" in chat.problem


def test_gpt4all_broken_files_carry_their_reasons(found):
    bad = _by(found, "gpt4all", "nomic-embed-text-v1.5.f16")
    assert not bad.usable and "not a GGUF" in bad.problem
    cut = _by(found, "gpt4all", "all-MiniLM-L6-v2.partial")
    assert not cut.usable and "truncated" in cut.problem


def test_ollama_manifest_names_model_and_tag(found, fake_home):
    m = _by(found, "ollama", "qwen3-embedding:0.6b")
    assert m.usable and m.path == fake_home["ollama_blob"].resolve()
    assert m.family == "qwen3-embedding"
    assert not any(m.path.name.startswith("sha256-abab") for m in found)  # licence layer


def test_semdex_own_folder(found, fake_home):
    m = _by(found, "semdex", "all-MiniLM-L6-v2-F16")
    assert m.usable and m.path.parent == fake_home["semdex"].resolve()


def test_symlinked_duplicate_is_reported_once(found, fake_home):
    real = fake_home["lms_starter"].resolve()
    hits = [m for m in found if m.path == real]
    assert len(hits) == 1
    assert ("folder", fake_home["mine"] / "starter-link.gguf") in hits[0].also_at


def test_split_models(found, fake_home):
    first = _by(found, "folder", "e5-mistral-tiny-00001-of-00002")
    assert first.usable and first.split_parts == 2
    assert first.size_bytes == 2 * first.info.file_size
    orphan = _by(found, "folder", "orphan-00002-of-00003")
    assert not orphan.usable and "part 2 of 3" in orphan.problem
    assert "orphan-00001-of-00003.gguf" in orphan.problem
    # part 2 of the complete model is not listed on its own as a usable model
    assert not any(m.usable and m.name.endswith("00002-of-00002") for m in found)


def test_symlink_loops_end(found, fake_home):
    loop = _by(found, "folder", "self-loop")
    assert not loop.usable
    files = list(walk_gguf(fake_home["mine"], max_depth=50))
    assert len(files) == len(set(files)) and len(files) < 10


def test_every_path_is_reported_once_and_usable_first(found):
    paths = [m.path for m in found]
    assert len(paths) == len(set(paths))
    usable = [m.usable for m in found]
    assert usable == sorted(usable, reverse=True)
    assert {m.source for m in found} == {"hf", "lmstudio", "gpt4all", "ollama", "semdex",
                                         "folder"}
    json.dumps([m.to_dict() for m in found])


def test_missing_folders_and_unreadable_folders_are_skipped(tmp_path):
    locked = tmp_path / "locked"
    write_tiny_llama(locked / "inner" / "e5-mistral.gguf")
    os.chmod(locked, 0)
    try:
        out = discover([tmp_path / "nope", locked], locations=Locations())
    finally:
        os.chmod(locked, 0o755)
    # root reads it anyway; everyone else sees nothing: either way, no exception
    assert len(out) <= 1


def test_the_same_place_found_twice_is_not_also_at_itself(tmp_path):
    """The chosen model lies in Semdex's own folder: found there and as the chosen file."""
    own = tmp_path / "own"
    f = write_tiny_llama(own / "e5-mistral.gguf")
    out = discover([f, own], locations=Locations(semdex=[own]))
    assert len(out) == 1 and out[0].also_at == []


def test_depth_is_capped(tmp_path):
    deep = tmp_path.joinpath(*[f"d{i}" for i in range(8)])
    write_tiny_llama(deep / "e5-mistral.gguf")
    assert discover([tmp_path], locations=Locations(), max_depth=3) == []
    assert len(discover([tmp_path], locations=Locations(), max_depth=10)) == 1


def test_a_single_file_can_be_passed(fake_home):
    f = fake_home["mine"] / "e5-mistral-tiny-00001-of-00002.gguf"
    out = discover([f], locations=Locations())
    assert [m.name for m in out] == ["e5-mistral-tiny-00001-of-00002"]


def test_default_locations_per_platform(tmp_path):
    env = {"HF_HOME": "/x/hf", "OLLAMA_MODELS": "/y/ollama", "LOCALAPPDATA": "/ignored"}
    linux = default_locations(tmp_path, env, platform="linux")
    assert linux.hf[0] == Path("/x/hf/hub")
    assert linux.hf[-1] == tmp_path / ".cache/huggingface/hub"
    assert linux.ollama == [Path("/y/ollama"), tmp_path / ".ollama/models"]
    assert linux.gpt4all == [tmp_path / ".local/share/nomic.ai/GPT4All"]
    assert tmp_path / ".lmstudio/models" in linux.lmstudio
    assert tmp_path / ".cache/lm-studio/models" in linux.lmstudio
    mac = default_locations(tmp_path, {}, platform="darwin")
    assert mac.gpt4all == [tmp_path / "Library/Application Support/nomic.ai/GPT4All"]
    win = default_locations(tmp_path, {}, platform="win32")
    assert win.gpt4all == [tmp_path / "AppData/Local/nomic.ai/GPT4All"]
    ini = tmp_path / ".config/nomic.ai/GPT4All.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[General]\nmodelPath=/data/gpt4all\n")
    assert default_locations(tmp_path, {}, platform="linux").gpt4all[0] == Path("/data/gpt4all")


def test_missing_from_catalogue(found):
    missing = {e.key for e in missing_from(found)}
    # the starter (MiniLM) is here; tiny "Qwen3-Embedding-0.6B" files are far too small to
    # count as the real 0.6B model, and nothing else is installed
    assert "all-minilm-l6-v2" not in missing
    assert {"qwen3-embedding-0.6b", "e5-mistral-7b-instruct", "bge-small-en-v1.5"} <= missing
    assert len(missing) == len(CATALOGUE) - 1


def test_catalogue_matches_by_family_and_size():
    assert find_entry("bge", 33_000_000).key == "bge-small-en-v1.5"
    assert find_entry("bge", 335_000_000).key == "bge-large-en-v1.5"
    assert find_entry("qwen3-embedding", 7_567_000_000).key == "qwen3-embedding-8b"
    assert find_entry("bge", 3_000_000_000) is None
    for entry in CATALOGUE:
        assert entry.quants and entry.recommended_quant() in entry.quants
        assert entry.builtin or entry.gguf_sources
        assert entry.to_dict()["gpu_gib_needed"] > 0
    assert by_key("e5-mistral-7b-instruct").recommended_quant().name == "Q4_K_M"


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_hf_repo_with_several_files_names_each(tmp_path):
    repo = tmp_path / "hub/models--org--Thing-GGUF/snapshots/r"
    write_tiny_llama(repo / "thing-q8_0.gguf", name="bge-tiny", seed=6)
    write_tiny_llama(repo / "thing-f16.gguf", name="bge-tiny", seed=7)
    out = discover([], locations=Locations(hf=[tmp_path / "hub"]))
    assert sorted(m.name for m in out) == ["org/Thing-GGUF (thing-f16.gguf)",
                                           "org/Thing-GGUF (thing-q8_0.gguf)"]
