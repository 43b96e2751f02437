"""A chat model's first load, tried in a child process, as an embedder's is (model_check).

llama.cpp aborts the whole process on some files (shapes it cannot multiply, kernels that
crash on the CPU): such a chat GGUF must fail in a child, not take the window down with an
answer half written. The child loads the file with the very settings the answer will use,
decodes a short prompt and writes a few tokens; the outcome is remembered under the file as
it is now, the build and those settings (in the embedders' records file), so only a new file,
build or setting pays for the trial (about a second for a small model, the load time for a
large one).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from desktop.ask.chat_model import ChatModel, ChatModelError, ChatSettings
from desktop.models import model_check, trial_load
from desktop.models.trial_load import TIMEOUT, CheckResult

CHILD_FLAG = "--semdex-chat-check"  # how a frozen app is asked to be the child
PROBE = "Answer in one word: what colour is the sky on a clear day?"


def record_key(settings: ChatSettings, n_ctx: int, gpu_layers: int, device: str | None
               ) -> str:
    """The file as it is now and the build (as for embedders), and what decides the kernels
    a chat model runs: its context, its GPU layers and its device."""
    return (model_check.file_prefix(settings.path)
            + f"chat|{n_ctx}|{gpu_layers}|{device or ''}")


def check(model: ChatModel, *, records: Path | None = None, force: bool = False,
          cancel: threading.Event | None = None, timeout: float = TIMEOUT) -> CheckResult:
    """The outcome for this chat model's file and settings: remembered, or found now."""
    params = model.load_params
    # the child loads with the layers and device decided here, not with a reading of its own
    settings = ChatSettings(path=str(model.path), context=model.n_ctx,
                            answer_tokens=model.settings.answer_tokens,
                            threads=model.settings.threads, gpu_layers=params.gpu_layers,
                            device=params.device or ("cpu" if params.gpu_layers == 0 else None))
    payload = json.dumps({"settings": asdict(settings)})
    return model_check.remembered_or_tried(
        record_key(settings, model.n_ctx, params.gpu_layers, params.device), model.path,
        lambda: trial_load.run_trial(CHILD_FLAG, payload, timeout=timeout, cancel=cancel),
        records=records, force=force)


def ensure_usable(model: ChatModel, **kw) -> None:
    """Raise ChatModelError, naming the file and what llama.cpp did, unless it passed."""
    result = check(model, **kw)
    if not result.ok:
        raise ChatModelError(f"{model.path.name}: {result.reason} (found in a trial load in a "
                             "separate process; Semdex does not load this file)")


def child_main(argv: Sequence[str]) -> int:
    """The child: load, decode the probe, write a few tokens, report."""
    from desktop.models import llama_log

    trial_load.child_setup()
    settings = ChatSettings(**json.loads(argv[0])["settings"])
    started = time.monotonic()
    trial_load.say(stage="load")
    llama_log.install()  # (loads the llama.cpp library: a build this CPU cannot run stops here)
    try:
        model = ChatModel(settings, trial=False)  # loads, and decodes one token
    except ChatModelError as exc:
        trial_load.say(ok=False, reason=str(exc))
        return trial_load.REFUSED
    trial_load.say(stage="answer")
    try:
        written = "".join(model.generate(model.prompt_tokens(PROBE), 4))
    except (ChatModelError, RuntimeError, ValueError) as exc:
        trial_load.say(ok=False, reason=f"llama.cpp failed writing a test answer: {exc}")
        return trial_load.REFUSED
    finally:
        model.close()
    trial_load.say(stage="done", ok=True, written=written[:40],
                   seconds=round(time.monotonic() - started, 3))
    return 0


def run_as_child(argv: Sequence[str]) -> None:
    trial_load.run_as_child(argv, child_main)


if __name__ == "__main__":
    import sys

    run_as_child(sys.argv[1:])
