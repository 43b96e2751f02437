"""E-mail: single messages (.eml) and mailboxes (.mbox), with the standard library's parser.

Each message reads as a small header block (From, To, Cc, Date, Subject), its body (the plain
text part when there is one, else the HTML part as text), then the text of each attached
document under an ``Attachment: <name>`` line. Attachments go through the app's own
dispatcher, so a PDF in a mail is searchable like a PDF on disk; one that cannot be read is
named with the reason and never stops the message. Attached messages are read in place, and
the nesting (attached mails, attached .eml files) stops at MAX_DEPTH.
"""

from __future__ import annotations

import contextvars
import email
import email.policy
import re
from email.message import Message

from desktop.extract.html import html_to_text
from desktop.extract.model import Document, ExtractionError, Section, Skipped, tidy
from desktop.extract.text import decode_text, normalise_newlines

MAX_MESSAGES = 50_000
MAX_DEPTH = 3  # messages within messages, counting the outermost as 1
_HEADERS = ("From", "To", "Cc", "Date", "Subject")
_SPACES = re.compile(r"\s+")
# An mbox separator: "From " at a line start, then the envelope sender and a date (a time or
# a year somewhere after the sender: not a sentence that happens to begin with "From ").
_FROM_LINE = re.compile(rb"^From [^\n]*", re.M)
_POSTMARK = re.compile(rb"From \S+\s+.*?(?:\d{1,2}:\d\d|\b\d{4}\b)")
_ASCTIME = re.compile(
    rb"From \S+\s+(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+"
    rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+\d{1,2}\s+\d{1,2}:\d\d"
)
_ESCAPED_FROM = re.compile(rb"^>(>*From )", re.M)  # mboxrd and mboxo quoting of body lines

# How deep the current extraction is in messages, across the dispatcher (an attached .eml
# comes back here through desktop.extract.extract).
_depth: contextvars.ContextVar[int] = contextvars.ContextVar("semdex_mail_depth", default=0)


def _one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _header(message: Message, name: str) -> str:
    try:
        values = message.get_all(name) or []
        return _one_line(", ".join(str(value) for value in values))
    except Exception:  # a header the policy cannot parse: show it as written
        raw = [value for key, value in message.raw_items() if key.lower() == name.lower()]
        return _one_line(", ".join(str(value) for value in raw))


def _filename(part: Message) -> str:
    try:
        return _one_line(part.get_filename() or "")
    except Exception:  # malformed parameters
        return ""


def _is_attachment(part: Message) -> bool:
    return bool(_filename(part)) or part.get_content_disposition() == "attachment"


def _payload(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a damaged transfer encoding
        payload = None
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    return raw.encode("utf-8", "replace") if isinstance(raw, str) else b""


def _part_text(part: Message) -> str:
    """A text part decoded with its declared charset, else as the app decodes text files."""
    payload = _payload(part)
    charset = part.get_content_charset()
    if charset:
        try:
            return normalise_newlines(payload.decode(charset))
        except (LookupError, UnicodeDecodeError, UnicodeError):
            pass
    return decode_text(payload)[0]


def _leaves(message: Message) -> list[Message]:
    """The message's non-multipart parts in order (an attached message is one leaf)."""
    leaves: list[Message] = []
    stack = [message]
    while stack:
        part = stack.pop()
        payload = part.get_payload() if part.is_multipart() else None
        if part.get_content_maintype() == "multipart" and isinstance(payload, list):
            stack.extend(reversed(payload))
        else:
            leaves.append(part)
    return leaves


def _body_part(leaves: list[Message]) -> Message | None:
    for wanted in ("text/plain", "text/html"):
        for part in leaves:
            if part.get_content_type() == wanted and not _is_attachment(part):
                return part
    return None


def _attached_message(part: Message) -> Message | None:
    if part.get_content_type() != "message/rfc822":
        return None
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    return None


def _attachment_text(name: str, data: bytes) -> str:
    from desktop.extract import extract  # lazily: the dispatcher imports this module

    try:
        document = extract(name, data)
    except (Skipped, ExtractionError) as exc:
        return f"Attachment: {name} (not indexed: {exc.reason})"
    except Exception as exc:  # never let one attachment stop the mail
        return f"Attachment: {name} (not indexed: {type(exc).__name__})"
    return f"Attachment: {name}\n{document.text}"


def _message_text(message: Message, depth: int) -> str:
    """A message as text; `depth` is its nesting, the outermost being 1."""
    lines = [f"{name}: {value}" for name in _HEADERS if (value := _header(message, name))]
    blocks = ["\n".join(lines)] if lines else []
    leaves = _leaves(message)
    body = _body_part(leaves)
    if body is not None:
        text = _part_text(body)
        blocks.append(html_to_text(text) if body.get_content_type() == "text/html" else text)
    for part in leaves:
        if part is body:
            continue
        inner = _attached_message(part)
        name = _filename(part)
        if inner is not None:
            label = name or _header(inner, "Subject") or "message"
            if depth >= MAX_DEPTH:
                blocks.append(f"Attachment: {label} (not indexed: nested too deeply)")
            else:
                blocks.append(f"Attachment: {label}\n{_message_text(inner, depth + 1)}")
        elif name:
            if part.get_content_maintype() == "image" and part["Content-ID"] \
                    and part.get_content_disposition() != "attachment":
                continue  # a picture shown inside the HTML body (a logo), not an attachment
            token = _depth.set(depth)
            try:
                blocks.append(_attachment_text(name, _payload(part)))
            finally:
                _depth.reset(token)
    return tidy("\n\n".join(block for block in blocks if block.strip()))


def _parse(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=email.policy.default)


def extract_eml(data: bytes) -> Document:
    """One message (.eml) as one section: headers, body, then attached documents' text."""
    depth = _depth.get() + 1
    if depth > MAX_DEPTH:
        raise Skipped("nested too deeply")
    text = _message_text(_parse(data), depth)
    if not text.strip():
        raise Skipped("no text")
    return Document(kind="email", sections=[Section(text=text, page=None)])


def split_mbox(data: bytes) -> list[bytes]:
    """The messages of an mbox file (mboxo or mboxrd), their "From " lines unescaped.

    A message starts at a "From " line that opens the file, or that follows an empty line and
    carries a sender and a date, or that is a postmark in the exact form mail systems write
    (trusted without the empty line, which some exporters leave out). Body lines quoted as
    ">From " lose one ">"."""
    data = data.replace(b"\r\n", b"\n")
    starts: list[int] = []
    for match in _FROM_LINE.finditer(data):
        at, line = match.start(), match.group()
        after_blank = at == 1 or data[at - 2:at] == b"\n\n"  # (at 1: after an empty line)
        if at == 0 or (after_blank and _POSTMARK.match(line)) or _ASCTIME.match(line):
            starts.append(at)
    if (not starts or starts[0] != 0) and data[: starts[0] if starts else len(data)].strip():
        starts.insert(0, 0)  # no postmark at the top: what comes first is a message too
    messages = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(data)
        chunk = data[start:end]
        if chunk.startswith(b"From "):
            chunk = chunk.partition(b"\n")[2]  # the postmark is the mailbox's, not the mail's
        messages.append(_ESCAPED_FROM.sub(rb"\1", chunk))
    return messages


def extract_mbox(data: bytes) -> Document:
    """A mailbox as one section per message, page = the message's number (1-based).

    At most MAX_MESSAGES are read; the last section then says that the rest was left out."""
    depth = _depth.get() + 1
    if depth > MAX_DEPTH:
        raise Skipped("nested too deeply")
    messages = split_mbox(data)
    sections: list[Section] = []
    for number, raw in enumerate(messages[:MAX_MESSAGES], start=1):
        try:
            text = _message_text(_parse(raw), depth)
        except Exception as exc:  # one unreadable message must not lose the mailbox
            text = f"(message not readable: {type(exc).__name__})"
        if text.strip():
            sections.append(Section(text=text, page=number))
    if not sections:
        raise Skipped("no text")
    if len(messages) > MAX_MESSAGES:
        last = sections[-1]
        note = (f"(mailbox cut at {MAX_MESSAGES:,} messages: the other "
                f"{len(messages) - MAX_MESSAGES:,} were not indexed)")
        sections[-1] = Section(text=f"{last.text}\n\n{note}", page=last.page)
    return Document(kind="mbox", sections=sections)
