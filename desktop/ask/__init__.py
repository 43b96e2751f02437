"""Ask: a short answer written from the person's own passages by a local chat model, every
sentence cited, streamed and cancellable (Qt-free; both faces use it)."""
