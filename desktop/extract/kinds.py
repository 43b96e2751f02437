"""Which files are worth reading, decided from the name alone.

The indexer asks about every file it walks past, so this must be cheap and must not open the
file; it is also the single list that says what "supported" means to the rest of the app.
"""

from __future__ import annotations

import os
from pathlib import PurePath

_TEXT = ".txt .text .log .nfo .org .adoc .asciidoc .textile .srt .vtt"
_MARKDOWN = ".md .markdown .mdown .mkd .mkdn .mdx .rmd .qmd"
_RST = ".rst .rest"
_CODE = (
    ".py .pyi .pyw .ipy .js .mjs .cjs .ts .mts .cts .tsx .jsx .vue .svelte .java .c .h .cc .cpp"
    " .cxx .hh .hpp .hxx .inl .cs .fs .fsx .vb .go .rs .rb .php .swift .kt .kts .scala .sc"
    " .groovy .gradle .dart .sh .bash .zsh .fish .ksh .ps1 .psm1 .bat .cmd .sql .r .jl .m"
    " .mm .lua .pl .pm .tcl .ex .exs .erl .hrl .hs .ml .mli .clj .cljs .edn .lisp .el .scm .rkt"
    " .nim .zig .v .sv .vhd .vhdl .asm .s .f .f90 .pas .d .cmake .mk .proto .graphql .gql"
    " .toml .yaml .yml .json .jsonc .json5 .ini .cfg .conf .properties .xml .xsd"
    " .xsl .xslt .plist .css .scss .sass .less .tex .bib .sty .cls .dockerfile .tf .hcl .nix"
    " .patch .diff .bazel .bzl .csproj .sln"
)
_HTML = ".html .htm .xhtml"

_SUFFIX_KINDS: dict[str, str] = {}
for _kind, _suffixes in (
    ("text", _TEXT),
    ("markdown", _MARKDOWN),
    ("rst", _RST),
    ("code", _CODE),
    ("html", _HTML),
    ("pdf", ".pdf"),
    ("docx", ".docx .docm .dotx .dotm"),
    ("pptx", ".pptx .pptm .ppsx .ppsm .potx"),
    ("xlsx", ".xlsx .xlsm .xltx .xltm"),
    ("odt", ".odt .ott"),
    ("ods", ".ods .ots"),
    ("odp", ".odp .otp"),
    ("epub", ".epub"),
    ("rtf", ".rtf"),
    ("email", ".eml"),
    ("mbox", ".mbox .mbx"),
    ("notebook", ".ipynb"),
    ("csv", ".csv"),
    ("tsv", ".tsv .tab"),
    # read with OCR, when the person turns it on (Settings; the indexer passes them over else)
    ("image", ".png .jpg .jpeg .tif .tiff .webp .bmp"),
    # the binary Office formats of 1997-2003: reported by name as not supported, never
    # passed over in silence
    ("legacy", ".doc .dot .xls .xlt .ppt .pps .pot"),
):
    _SUFFIX_KINDS.update(dict.fromkeys(_suffixes.split(), _kind))

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_SUFFIX_KINDS)

# what a section's number (Section.page) counts, by kind: "slide 3" says where a hit is
SECTION_WORDS: dict[str, str] = {
    "pdf": "page", "image": "page", "pptx": "slide", "odp": "slide", "xlsx": "sheet",
    "ods": "sheet", "epub": "chapter", "mbox": "message", "notebook": "cell",
}


def section_place(kind: str, page: int | None) -> str | None:
    """"page 3", "slide 2", "sheet 1": where in its file a passage is, or None."""
    if not page:
        return None
    return f"{SECTION_WORDS.get(kind, 'part')} {page}"

# Well-known files that conventionally have no extension (compared case-insensitively).
_NAME_KINDS: dict[str, str] = {
    **dict.fromkeys(
        "readme license licence copying authors contributors changelog changes news history"
        " todo notice install thanks maintainers codeowners".split(),
        "text",
    ),
    **dict.fromkeys(
        "makefile gnumakefile dockerfile containerfile vagrantfile jenkinsfile procfile gemfile"
        " rakefile brewfile podfile justfile snakefile pipfile .gitignore .gitattributes"
        " .dockerignore .editorconfig .bashrc .bash_profile .zshrc .profile .vimrc"
        " .gitconfig".split(),
        "code",
    ),
}
_VARIANT_STEMS = frozenset({"dockerfile", "containerfile"})


def kind_for(path: str | PurePath) -> str | None:
    """The extractor kind for a file name, or None if the file is not supported."""
    # (a walk asks for every entry's name: a plain name needs no PurePath)
    name = (path if isinstance(path, str) and "/" not in path and os.sep not in path
            else PurePath(path).name).lower()
    if name in _NAME_KINDS:
        return _NAME_KINDS[name]
    stem, dot, suffix = name.rpartition(".")
    if dot and stem:
        kind = _SUFFIX_KINDS.get("." + suffix)
        if kind is not None:
            return kind
        if stem in _VARIANT_STEMS:  # Dockerfile.dev, Containerfile.prod
            return "code"
    return None
