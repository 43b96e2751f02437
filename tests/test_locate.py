"""desktop.search.locate: finding a passage again in a text that is not byte-for-byte the one it
was cut from (PDFium's page text against pypdf's, a file edited since indexing). Pure text
logic, tested without Qt."""

from __future__ import annotations

from desktop.search.locate import line_of, locate_passage, same_passage


def test_locate_passage_bridges_pypdf_and_pdfium_text():
    pdfium = "The quick brown fox jumps over the\r\nlazy dog. The ﬁre  was lit.\r\nEnd."
    assert locate_passage(pdfium, "fox jumps over the\nlazy dog. The fire was") == (16, 58)
    assert locate_passage(pdfium, "nowhere to be seen in this text") is None
    # only the ends match (a word differs in the middle): the span between them
    assert locate_passage(pdfium, "quick brown fox jumps over the lazy CAT. The fire was lit.") \
        == (4, 63)


def test_locate_passage_ignores_case_width_and_invisible_characters():
    text = "Intro.\nＦＵＬＬ width and soft\u00adhyphen and ZERO\u200bwidth here.\nEnd."
    start, end = locate_passage(text, "full width and softhyphen and zerowidth here.")
    assert text[start:end] == "ＦＵＬＬ width and soft\u00adhyphen and ZERO\u200bwidth here."
    assert locate_passage("", "anything") is None and locate_passage("text", "") is None
    assert locate_passage("short text", "tiny") is None  # too short to anchor, not there


def test_line_numbers_and_same_passage():
    text = "one\ntwo\nthree"
    assert [line_of(text, i) for i in (0, 3, 4, text.index("three"), len(text))] == [1, 1, 2, 3, 3]
    assert line_of(text, -5) == 1
    assert same_passage("a  b\nc", " a b c ") and not same_passage("a b", "a c")
