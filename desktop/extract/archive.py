"""Zip-based documents (Office, OpenDocument, EPUB) opened with their size checked first.

A .docx, .xlsx, .pptx, .odt or .epub is a zip archive, and a zip can claim little and inflate
to a great deal: a 320 KB document.xml-bomb inflates to 100 MB, a real zip bomb to many GB.
Before a single part is read, the archive's directory is checked: the number of entries, the
total size it says it inflates to, and the ratio of that to the file's own size. Each part is
then read with a cap, so a directory that lies about sizes cannot get further either.
"""

from __future__ import annotations

import io
import zipfile
import zlib

from desktop.extract.model import ExtractionError

MAX_ENTRIES = 20_000
MAX_INFLATED = 512 * 1024 * 1024  # everything the archive says it holds
MAX_PART = 256 * 1024 * 1024  # one part, read
MAX_RATIO = 200  # inflated / compressed, for archives inflating to over RATIO_FLOOR
RATIO_FLOOR = 64 * 1024 * 1024
_MB = 1024 * 1024


def open_zip(data: bytes, label: str) -> zipfile.ZipFile:
    """The archive, checked; ExtractionError naming `label` ("DOCX") when it is not one, is
    damaged, or would inflate beyond the limits."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ExtractionError(f"corrupt {label}: not a zip archive") from exc
    except (ValueError, EOFError, OSError, NotImplementedError) as exc:
        raise ExtractionError(f"corrupt {label}: damaged archive ({type(exc).__name__})") from exc
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        archive.close()
        raise ExtractionError(f"too many parts: {len(infos):,} in the archive (limit "
                              f"{MAX_ENTRIES:,}): a zip bomb, or not a {label}")
    inflated = sum(max(0, i.file_size) for i in infos)
    if inflated > MAX_INFLATED or (inflated > RATIO_FLOOR
                                   and inflated > MAX_RATIO * max(1, len(data))):
        archive.close()
        raise ExtractionError(f"too large: inflates to {inflated / _MB:,.0f} MB from "
                              f"{len(data) / _MB:,.1f} MB (limit {MAX_INFLATED // _MB} MB, or "
                              f"{MAX_RATIO} times its size): a zip bomb?")
    return archive


def read_part(archive: zipfile.ZipFile, name: str, label: str, limit: int = MAX_PART) -> bytes:
    """One part's bytes, at most `limit` of them read (a lying directory cannot get past it);
    ExtractionError for a damaged part, KeyError for a missing one."""
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise ExtractionError(f"too large: {name} inflates to {info.file_size / _MB:,.0f} MB "
                              f"(limit {limit // _MB} MB)")
    try:
        with archive.open(info) as part:
            out = part.read(limit + 1)
    except zipfile.BadZipFile as exc:  # bad CRC or local header
        raise ExtractionError(f"corrupt {label}: damaged archive ({str(exc)[:80]})") from exc
    except zlib.error as exc:
        raise ExtractionError(f"corrupt {label}: damaged archive (bad compressed data)") from exc
    except NotImplementedError as exc:  # an unsupported compression method
        raise ExtractionError(f"corrupt {label}: {str(exc)[:80]}") from exc
    except RuntimeError as exc:  # zip-level encryption
        raise ExtractionError(f"encrypted {label} (needs a password)") from exc
    except (ValueError, EOFError, OSError) as exc:
        raise ExtractionError(f"corrupt {label}: damaged archive ({type(exc).__name__})") from exc
    if len(out) > limit:
        raise ExtractionError(f"too large: {name} inflates past {limit // _MB} MB")
    return out
