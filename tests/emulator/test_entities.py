"""Formatted-text parsing, checked against the wording Telegram answers with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lumigram.emulator.entities import (
    format_text,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    utf16_len,
)
from lumigram.emulator.errors import ApiError

RESERVED = "_*[]()~`>#+-=|{}.!"


def error_of(parser, text: str) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiError) as caught:
        parser(text)
    assert caught.value.code == 400
    return caught.value.description


def test_html_tags_become_entities() -> None:
    text, entities = parse_html(
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s><strike>k</strike>"
        '<del>d</del><tg-spoiler>p</tg-spoiler><span class="tg-spoiler">q</span>'
        '<a href="https://example.com">a</a><code>c</code><blockquote>z</blockquote>'
    )
    assert text == "bsieunskdpqacz"
    assert [e["type"] for e in entities] == [
        "bold",
        "bold",
        "italic",
        "italic",
        "underline",
        "underline",
        "strikethrough",
        "strikethrough",
        "strikethrough",
        "spoiler",
        "spoiler",
        "text_link",
        "code",
        "blockquote",
    ]
    assert entities[11]["url"] == "https://example.com/"


def test_html_escapes_and_nesting() -> None:
    text, entities = parse_html(
        "&lt;b&gt; &amp; &quot;x&quot; &#65;&#x42; &unknown; <b><i>bi</i></b>"
    )
    assert text == '<b> & "x" AB &unknown; bi'
    assert sorted(entities, key=lambda e: e["type"]) == [
        {"type": "bold", "offset": 23, "length": 2},
        {"type": "italic", "offset": 23, "length": 2},
    ]


def test_html_pre_with_language_and_custom_emoji() -> None:
    text, entities = parse_html(
        '<pre><code class="language-python">x = 1</code></pre>'
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>'
    )
    assert text == "x = 1👍"
    assert entities[0] == {"type": "pre", "offset": 0, "length": 5, "language": "python"}
    assert entities[1] == {
        "type": "custom_emoji",
        "offset": 5,
        "length": 2,
        "custom_emoji_id": "5368324170671202286",
    }


def test_html_expandable_blockquote() -> None:
    assert (
        parse_html("<blockquote expandable>long</blockquote>")[1][0]["type"]
        == "expandable_blockquote"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<script>alert(1)</script>", 'Unsupported start tag "script" at byte offset 0'),
        ("<invalid>test</invalid>", 'Unsupported start tag "invalid" at byte offset 0'),
        (
            "<b><i>test</b></i>",
            'Unmatched end tag at byte offset 10, expected "</i>", found "</b>"',
        ),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ('<span class="x">y</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("ж<br>", 'Unsupported start tag "br" at byte offset 2'),
        (
            '<tg-emoji emoji-id="9999999999999999999">x</tg-emoji>',
            "Invalid custom emoji identifier specified",
        ),
    ],
)
def test_html_errors(text: str, message: str) -> None:
    assert error_of(parse_html, text) == f"Bad Request: can't parse entities: {message}"


def test_markdown_v2_entities() -> None:
    text, entities = parse_markdown_v2(
        "*b* _i_ __u__ ~s~ ||p|| `c` [l](https://x.org/a\\)b) \\. ```py\ncode\n```"
    )
    assert text == "b i u s p c l . code\n"
    kinds = [(e["type"], e["offset"], e["length"]) for e in entities]
    assert kinds == [
        ("bold", 0, 1),
        ("italic", 2, 1),
        ("underline", 4, 1),
        ("strikethrough", 6, 1),
        ("spoiler", 8, 1),
        ("code", 10, 1),
        ("text_link", 12, 1),
        ("pre", 16, 5),
    ]
    assert entities[6]["url"] == "https://x.org/a)b"
    assert entities[7]["language"] == "py"


def test_markdown_v2_blockquote() -> None:
    text, entities = parse_markdown_v2(">first\n>second\nafter")
    assert text == "first\nsecond\nafter"
    assert entities == [{"type": "blockquote", "offset": 0, "length": 12}]


@pytest.mark.parametrize(
    "char",
    list(
        RESERVED.replace("*", "")
        .replace("_", "")
        .replace("~", "")
        .replace("`", "")
        .replace("[", "")
        .replace("|", "")
    ),
)
def test_markdown_v2_reserved_characters(char: str) -> None:
    assert error_of(parse_markdown_v2, f"a{char}b") == (
        f"Bad Request: can't parse entities: Character '{char}' is reserved and must be escaped "
        "with the preceding '\\'"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("*unclosed", "Can't find end of Bold entity at byte offset 0"),
        ("*bold _italic\\_*", "Can't find end of Bold entity at byte offset 15"),
        ("_x", "Can't find end of Italic entity at byte offset 0"),
        ("`x", "Can't find end of Code entity at byte offset 0"),
    ],
)
def test_markdown_v2_unclosed(text: str, message: str) -> None:
    assert error_of(parse_markdown_v2, text) == f"Bad Request: can't parse entities: {message}"


def test_escaped_markdown_v2_is_plain() -> None:
    escaped = "".join("\\" + c for c in RESERVED)
    assert parse_markdown_v2(f"Price: 10\\.5 {escaped}") == (f"Price: 10.5 {RESERVED}", [])


def test_legacy_markdown() -> None:
    text, entities = parse_markdown("*bold* _it_ `code` [site](http://a.com)")
    assert text == "bold it code site"
    assert [e["type"] for e in entities] == ["bold", "italic", "code", "text_link"]
    assert error_of(parse_markdown, "*open") == (
        "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 0"
    )


def test_offsets_are_utf16() -> None:
    text, entities = format_text("😀 <b>x</b>", "HTML", None)
    assert text == "😀 x"
    assert entities == [{"type": "bold", "offset": 3, "length": 1}]
    assert utf16_len("😀") == 2


def test_format_text_trims_and_detects() -> None:
    text, entities = format_text("  /start ref_abc  ", None, None)
    assert text == "/start ref_abc"
    assert entities == [{"type": "bot_command", "offset": 0, "length": 6}]
    text, entities = format_text("see https://example.com and @someone #tag", None, None)
    assert [e["type"] for e in entities] == ["url", "mention", "hashtag"]


def test_parse_mode_is_case_insensitive_and_checked() -> None:
    assert format_text("<b>x</b>", "html", None)[0] == "x"
    with pytest.raises(ApiError, match="unsupported parse_mode"):
        format_text("x", "Markdown3", None)


def test_explicit_entities_are_checked() -> None:
    with pytest.raises(
        ApiError, match="entity begins after the end of the text at UTF-16 offset 100"
    ):
        format_text("hello", None, [{"type": "bold", "offset": 100, "length": 1}])
    with pytest.raises(ApiError, match="ends after the end of the text at UTF-16 offset 100"):
        format_text("hello", None, [{"type": "bold", "offset": 0, "length": 100}])
    with pytest.raises(ApiError, match="Unsupported type specified"):
        format_text("hello", None, [{"type": "nope", "offset": 0, "length": 1}])
    with pytest.raises(ApiError, match='Can\'t find field "url"'):
        format_text("hello", None, [{"type": "text_link", "offset": 0, "length": 1}])
    ok = format_text("hello", "HTML", [{"type": "italic", "offset": 1, "length": 2}])
    assert ok == ("hello", [{"type": "italic", "offset": 1, "length": 2}])


plain_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="<>&\\" + RESERVED),
    max_size=40,
)


@given(plain_text)
def test_text_without_markup_is_unchanged_by_every_parser(text: str) -> None:
    assert parse_html(text) == (text, [])
    assert parse_markdown_v2(text) == (text, [])


@given(st.text(max_size=30), st.sampled_from(["b", "i", "u", "s", "code", "tg-spoiler"]))
def test_html_escaped_text_survives_a_tag(text: str, tag: str) -> None:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    plain, entities = parse_html(f"<{tag}>{escaped}</{tag}>")
    assert plain == text
    if text:
        assert entities[0]["length"] == utf16_len(text)
