"""An embedding server's address as the person typed it, and its one error: light, so that
the settings and the command line check and report them without loading a model."""

from __future__ import annotations

import urllib.parse


def endpoint(url: str) -> str:
    """The embeddings URL for what the person typed: ``http://host:port``, ``.../v1`` or the
    full ``.../v1/embeddings``. Only http and https."""
    text = url.strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the embedding server must be an http:// or https:// address, "
                         f"like http://gpu-box:8080/v1 (not {url!r})")
    path = parts.path.rstrip("/")
    if not path.endswith("/embeddings"):
        path = (path if path.endswith("/v1") else path + "/v1") + "/embeddings"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class EmbedServerError(RuntimeError):
    """The embedding server could not be reached, or refused or garbled a request."""

    refused: bool = False  # the server understood and refused (a request it cannot take)
