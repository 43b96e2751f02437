"""Vectors from an embedding server: the OpenAI-compatible ``/v1/embeddings`` that llama.cpp's
llama-server (and ``python -m llama_cpp.server``) serve, on a GPU box of the person's team.

This machine still has the GGUF: its tokenizer (llama.cpp's vocab-only load, no weights) cuts
the passages exactly as the in-process embedder would, its family rules format them (the
instruction on queries, the document prefix, the EOS a decoder family reads its vector at),
and its key names the index, so vectors made here and there land in, and search, the same
table. The server is given text that is already formatted: each passage's tokens as text,
less the BOS/CLS and SEP the server's own tokenizer adds again, with an appended EOS written
as its token text (llama-server reads special tokens in its input). Vectors are normalised
here, whatever the server's --embd-normalize (llama_cpp.server returns them unnormalised).

Only the URL the person gave is ever contacted (the app is private by default).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import numpy as np

from desktop.models.embedder import Embedder, EmbedderSettings
from desktop.models.server_url import EmbedServerError, endpoint

__all__ = ["EmbedServerError", "RemoteEmbedder", "endpoint"]

log = logging.getLogger(__name__)

ITEMS_PER_REQUEST = 32  # passages per request (servers cap a request's items and tokens)
REQUEST_TIMEOUT = 120.0  # seconds: a busy GPU server answers a full request well within this
API_KEY_ENV = "SEMDEX_EMBED_API_KEY"  # sent as a bearer token when set (llama-server --api-key)


class RemoteEmbedder(Embedder):
    """An Embedder whose decodes happen on an embedding server."""

    def __init__(self, model_path: str | os.PathLike[str], url: str,
                 settings: EmbedderSettings | None = None, *, api_key: str | None = None,
                 timeout: float = REQUEST_TIMEOUT):
        self.url = endpoint(url)
        self._api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._timeout = timeout
        super().__init__(model_path, settings)

    def _open(self, settings: EmbedderSettings) -> None:
        import llama_cpp

        self.load_params = None
        self._llama = self._load(None)  # the tokenizer alone
        self._ctx = None
        self._vocab = self._llama.vocab
        self.dims = self.info.embedding_length or self._llama.n_embd()
        self._max_seqs = ITEMS_PER_REQUEST
        self.pack_tokens = ITEMS_PER_REQUEST * self.batch_tokens  # requests go by count
        self._detokenize = llama_cpp.llama_detokenize
        self._name = self.info.name or self.path.stem
        log.info("%s: vectors from the embedding server %s", self.path.name, self.url)

    @property
    def where(self) -> str:
        return f"the embedding server {self.url}"

    # -- text for the server -----------------------------------------------------------------

    def text_of(self, tokens: Sequence[int]) -> str:
        """A formatted sequence as the server must be given it: llama.cpp drops the BOS (CLS)
        and closing EOS/SEP its tokenizer adds by itself (the server adds them again) and
        writes any other special token, an EOS the family asked for, as its text."""
        arr = np.asarray(tokens, dtype=np.int32)
        ptr = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
        size = max(64, 8 * len(arr))
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = self._detokenize(self._vocab, ptr, len(arr), buf, size, True, True)
            if n >= 0:
                return buf.raw[:n].decode("utf-8", "replace")
            size = -n
        raise RuntimeError(f"llama.cpp could not write {len(arr)} tokens as text")

    # -- the request -------------------------------------------------------------------------

    def _decode(self, batch: list[Sequence[int]]) -> np.ndarray:
        with self._lock:
            return self._request([self.text_of(seq) for seq in batch])

    def _request(self, texts: list[str]) -> np.ndarray:
        """One request; a refused one of several items is split in two and tried again (a
        server whose batch cannot hold them all), a refused single item is the error."""
        try:
            return self._post(texts)
        except EmbedServerError as exc:
            if len(texts) < 2 or not getattr(exc, "refused", False):
                raise
            half = len(texts) // 2
            log.info("the embedding server refused %d passages at once (%s); sending them "
                     "in two requests", len(texts), exc)
            return np.concatenate([self._request(texts[:half]), self._request(texts[half:])])

    def _post(self, texts: list[str]) -> np.ndarray:
        body = json.dumps({"input": texts, "model": self._name}).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:  # noqa: S310
                payload = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            err = EmbedServerError(f"the embedding server {self.url} answered "
                                   f"{exc.code}: {_server_message(exc)}")
            err.refused = 400 <= exc.code < 500 and exc.code not in (401, 403, 404)
            raise err from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EmbedServerError(f"the embedding server {self.url} cannot be reached: "
                                   f"{reason}") from None
        except ValueError as exc:
            raise EmbedServerError(f"the embedding server {self.url} sent something that "
                                   f"is not JSON ({exc})") from None
        return self._vectors(payload, len(texts))

    def _vectors(self, payload: Any, count: int) -> np.ndarray:
        try:
            items = sorted(payload["data"], key=lambda d: d.get("index", 0))
            vectors = np.asarray([d["embedding"] for d in items], dtype=np.float32)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise EmbedServerError(f"the embedding server {self.url} answered without "
                                   "vectors (is it an OpenAI-compatible /v1/embeddings?)"
                                   ) from None
        if vectors.ndim == 3 and vectors.shape[1] == 1:  # llama_cpp.server, pooling none
            vectors = vectors[:, 0]
        if vectors.ndim != 2 or len(vectors) != count:
            raise EmbedServerError(
                f"the embedding server {self.url} returned {len(vectors)} vectors of shape "
                f"{vectors.shape[1:]} for {count} passages (is it pooling each passage into "
                "one vector? llama-server needs --pooling other than none)")
        if vectors.shape[1] != self.dims:
            raise EmbedServerError(
                f"the embedding server {self.url} gives {vectors.shape[1]}-dim vectors and "
                f"{self.path.name} gives {self.dims}: it serves another model; serve "
                f"{self.path.name} there, or choose the model it serves here")
        if not np.isfinite(vectors).all():
            raise EmbedServerError(f"the embedding server {self.url} returned vectors with "
                                   "NaN or infinite values")
        return vectors


def _server_message(exc: urllib.error.HTTPError) -> str:
    """The error text of a server's answer: OpenAI's {"error": {"message"}} or the body."""
    try:
        raw = exc.read()[:4000]
    except OSError:
        return exc.reason or "no reason given"
    try:
        data = json.loads(raw)
        err = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail")
            if msg:
                return str(msg)
        if isinstance(data, dict) and data.get("detail"):
            return str(data["detail"])
    except ValueError:
        pass
    return raw.decode("utf-8", "replace").strip() or str(exc.reason)
