"""Formatted text as Telegram parses it: HTML, MarkdownV2, legacy Markdown, entities.

The parsers follow the algorithm of TDLib (which the Bot API server uses), including
its error wording: errors report *byte* offsets into the UTF-8 source, entities carry
*UTF-16* offsets and lengths. :func:`format_text` is the entry point used by the
method handlers; :func:`detect_entities` adds what Telegram finds by itself
(bot commands, mentions, hashtags, URLs, e-mails).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, bad_request

Entity = dict[str, Any]

ENTITY_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "blockquote",
        "expandable_blockquote",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "date_time",
    }
)

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_MDV2_RESERVED = "_*[]()~`>#+-=|{}.!"
_INT64_MAX = 2**63 - 1


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of every Bot API offset and limit."""
    return len(text.encode("utf-16-le")) // 2


def _u16(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _cant_parse(detail: str) -> ApiError:
    return bad_request(f"can't parse entities: {detail}")


@dataclass
class _Open:
    kind: str
    argument: str
    utf16_start: int
    byte_offset: int
    tag: str = ""


# -- HTML ------------------------------------------------------------------------------


def _decode_html_entity(text: str, i: int) -> tuple[str, int] | None:
    """Decode ``&lt;``-style entities at ``text[i] == '&'``; None if not an entity."""
    end = text.find(";", i + 1, i + 12)
    if end == -1:
        return None
    body = text[i + 1 : end]
    named = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
    if body in named:
        return named[body], end - i + 1
    try:
        if body.startswith(("#x", "#X")):
            code = int(body[2:], 16)
        elif body.startswith("#") and body[1:].isdigit():
            code = int(body[1:])
        else:
            return None
    except ValueError:
        return None
    if not 0 < code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), end - i + 1


def _check_url(url: str) -> str | None:
    """A normalised URL, or None when Telegram would not accept it as a link."""
    url = url.strip()
    if not url:
        return None
    if url.startswith("tg://"):
        return url
    match = re.match(r"^(?:(https?|ftp|tonsite)://)?([^\s/:?#]+)(:\d+)?([/?#]\S*)?$", url, re.I)
    if not match or ("." not in match.group(2) and match.group(2).lower() != "localhost"):
        return None
    if not match.group(1):
        url = "http://" + url
    if not match.group(4):
        url += "/"
    return url


def parse_html(text: str) -> tuple[str, list[Entity]]:
    out: list[str] = []
    utf16 = 0
    stack: list[_Open] = []
    entities: list[Entity] = []
    n = len(text)
    i = 0
    while i < n:
        char = text[i]
        if char == "&":
            decoded = _decode_html_entity(text, i)
            if decoded is not None:
                out.append(decoded[0])
                utf16 += _u16(decoded[0])
                i += decoded[1]
                continue
        if char != "<":
            out.append(char)
            utf16 += _u16(char)
            i += 1
            continue
        begin = i
        begin_bytes = _byte_offset(text, begin)
        i += 1
        if i >= n:
            raise _cant_parse(f"Unclosed start tag at byte offset {begin_bytes}")
        if text[i] != "/":
            i, opened = _html_start_tag(text, i, begin_bytes)
            opened.utf16_start = utf16
            stack.append(opened)
            continue
        # end tag
        j = i + 1
        while j < n and not text[j].isspace() and text[j] != ">":
            j += 1
        end_name = text[i + 1 : j].lower()
        while j < n and text[j].isspace():
            j += 1
        if j >= n or text[j] != ">":
            raise _cant_parse(f"Unclosed end tag at byte offset {begin_bytes}")
        if not stack:
            raise _cant_parse(f"Unexpected end tag at byte offset {begin_bytes}")
        top = stack[-1]
        if end_name and end_name != top.tag:
            raise _cant_parse(
                f'Unmatched end tag at byte offset {begin_bytes}, expected "</{top.tag}>", '
                f'found "</{end_name}>"'
            )
        stack.pop()
        i = j + 1
        _close_html_entity(top, utf16, "".join(out), entities)
    if stack:
        raise _cant_parse(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    return "".join(out), sort_entities(entities)


def _skip_spaces(text: str, i: int, begin_bytes: int) -> int:
    """Skip whitespace inside a tag; the tag must not end with the text."""
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        raise _cant_parse(f"Unclosed start tag at byte offset {begin_bytes}")
    return i


def _html_attribute_value(text: str, i: int) -> tuple[int, str]:
    """An attribute value at ``text[i]``: quoted (entities decoded) or a name token."""
    n = len(text)
    if text[i] not in "'\"":
        start = i
        while i < n and ((text[i].isascii() and text[i].isalnum()) or text[i] in ".-"):
            i += 1
        if i < n and not text[i].isspace() and text[i] != ">":
            raise _cant_parse(
                f"Unexpected end of name token at byte offset {_byte_offset(text, i)}"
            )
        return i, text[start:i].lower()
    quote = text[i]
    i += 1
    chars: list[str] = []
    while i < n and text[i] != quote:
        decoded = _decode_html_entity(text, i) if text[i] == "&" else None
        if decoded is not None:
            chars.append(decoded[0])
            i += decoded[1]
        else:
            chars.append(text[i])
            i += 1
    return (i + 1 if i < n else i), "".join(chars)


def _tag_argument(tag: str, attribute: str, value: str) -> str | None:
    """The part of an attribute that matters for the entity (None: ignored)."""
    if tag == "a" and attribute == "href":
        return value
    if tag == "code" and attribute == "class" and value.startswith("language-"):
        return value[len("language-") :]
    if tag == "span" and attribute == "class" and value.startswith("tg-"):
        return value[len("tg-") :]
    if tag == "tg-emoji" and attribute == "emoji-id":
        return value
    if tag == "blockquote" and attribute == "expandable":
        return "expandable"
    return None


def _html_start_tag(text: str, i: int, begin_bytes: int) -> tuple[int, _Open]:
    n = len(text)
    j = i
    while j < n and not text[j].isspace() and text[j] != ">":
        j += 1
    if j >= n:
        raise _cant_parse(f"Unclosed start tag at byte offset {begin_bytes}")
    tag = text[i:j].lower()
    if tag not in _HTML_TAGS:
        raise _cant_parse(f'Unsupported start tag "{tag}" at byte offset {begin_bytes}')
    i = j
    argument = ""
    while True:
        i = _skip_spaces(text, i, begin_bytes)
        if text[i] == ">":
            i += 1
            break
        attr_start = i
        while i < n and not text[i].isspace() and text[i] not in "=>":
            i += 1
        attribute = text[attr_start:i].lower()
        if not attribute:
            raise _cant_parse(
                f'Empty attribute name in the tag "{tag}" at byte offset {begin_bytes}'
            )
        i = _skip_spaces(text, i, begin_bytes)
        value = ""
        if text[i] == "=":  # else an attribute without a value, like "expandable"
            i, value = _html_attribute_value(text, _skip_spaces(text, i + 1, begin_bytes))
            if i >= n:
                raise _cant_parse(f"Unclosed start tag at byte offset {begin_bytes}")
        found = _tag_argument(tag, attribute, value)
        if found is not None:
            argument = found
    if tag == "span" and argument != "spoiler":
        raise _cant_parse(f'Tag "span" must have class "tg-spoiler" at byte offset {begin_bytes}')
    return i, _Open(_HTML_TAGS[tag], argument, 0, begin_bytes, tag)


def _close_html_entity(top: _Open, utf16: int, plain: str, entities: list[Entity]) -> None:
    length = utf16 - top.utf16_start
    kind = top.kind
    entity: Entity = {"type": kind, "offset": top.utf16_start, "length": length}
    if kind == "custom_emoji":
        if not top.argument.isdigit() or not 0 < int(top.argument) <= _INT64_MAX:
            raise _cant_parse("Invalid custom emoji identifier specified")
        entity["custom_emoji_id"] = top.argument
    if length <= 0:
        return
    if kind == "text_link":
        url = _check_url(top.argument or _utf16_slice(plain, top.utf16_start, length))
        if url is None:
            return
        entity["url"] = url
    elif kind == "blockquote" and top.argument == "expandable":
        entity["type"] = "expandable_blockquote"
    elif kind == "pre":
        # <pre><code class="language-x">...</code></pre> is one pre entity with a language
        last = entities[-1] if entities else None
        if (
            last is not None
            and last["type"] == "code"
            and last["offset"] == top.utf16_start
            and last["length"] == length
        ):
            entities.pop()
            if "language" in last:
                entity["language"] = last["language"]
    elif kind == "code" and top.argument:
        entity["language"] = top.argument
    entities.append(entity)


def _utf16_slice(text: str, offset: int, length: int) -> str:
    data = text.encode("utf-16-le")
    return data[offset * 2 : (offset + length) * 2].decode("utf-16-le", errors="replace")


# -- MarkdownV2 ------------------------------------------------------------------------

_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def _reserved(char: str) -> ApiError:
    return _cant_parse(
        f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
    )


def parse_markdown_v2(text: str) -> tuple[str, list[Entity]]:
    out: list[str] = []
    utf16 = 0
    stack: list[_Open] = []
    entities: list[Entity] = []
    quote: _Open | None = None  # the blockquote being built, if any
    n = len(text)

    def at(k: int) -> str:
        return text[k] if 0 <= k < n else ""

    i = 0
    while i < n:
        char = text[i]
        in_code = bool(stack) and stack[-1].kind in ("code", "pre")
        if not in_code and (i == 0 or text[i - 1] == "\n"):
            # blockquotes are line-based: every quoted line starts with '>'
            marker = 3 if text.startswith("**>", i) else 1 if char == ">" else 0
            if marker:
                if quote is None:
                    kind = "expandable_blockquote" if marker == 3 else "blockquote"
                    quote = _Open(kind, "", utf16, _byte_offset(text, i))
                i += marker
                continue
            if quote is not None:
                _close_quote(quote, utf16 - 1, entities)
                quote = None
        if char == "\\" and 0 < ord(at(i + 1) or "\0") <= 126:
            out.append(text[i + 1])
            utf16 += 1
            i += 2
            continue
        reserved = "`" if in_code else _MDV2_RESERVED
        if char not in reserved:
            out.append(char)
            utf16 += _u16(char)
            i += 1
            continue
        if (
            quote is not None
            and quote.kind == "expandable_blockquote"
            and text.startswith("||", i)
            and at(i + 2) in ("", "\n")
            and not (stack and stack[-1].kind == "spoiler")
        ):
            i += 2  # "||" ends an expandable blockquote at the end of its last line
            _close_quote(quote, utf16, entities)
            quote = None
            continue
        if stack and _ends(stack[-1].kind, text, i):
            i = _close_mdv2(stack.pop(), text, i, utf16, "".join(out), entities)
            continue
        i = _open_mdv2(text, i, utf16, stack)
    if quote is not None:
        _close_quote(quote, utf16, entities)
    if stack:
        top = stack[-1]
        raise _cant_parse(
            f"Can't find end of {_MDV2_NAMES[top.kind]} entity at byte offset {top.byte_offset}"
        )
    return "".join(out), sort_entities(entities)


def _close_quote(quote: _Open, end: int, entities: list[Entity]) -> None:
    if end > quote.utf16_start:
        entities.append(
            {"type": quote.kind, "offset": quote.utf16_start, "length": end - quote.utf16_start}
        )


def _ends(kind: str, text: str, i: int) -> bool:
    char = text[i]
    nxt = text[i + 1] if i + 1 < len(text) else ""
    if kind == "bold":
        return char == "*"
    if kind == "italic":
        return char == "_" and nxt != "_"
    if kind == "underline":
        return char == "_" and nxt == "_"
    if kind == "strikethrough":
        return char == "~"
    if kind == "spoiler":
        return char == "|" and nxt == "|"
    if kind == "code":
        return char == "`"
    if kind == "pre":
        return text.startswith("```", i)
    return kind in ("text_link", "custom_emoji") and char == "]"


def _open_mdv2(text: str, i: int, utf16: int, stack: list[_Open]) -> int:
    char = text[i]
    n = len(text)
    start_bytes = _byte_offset(text, i)
    argument = ""
    if char == "_":
        if text.startswith("__", i):
            kind, i = "underline", i + 2
        else:
            kind, i = "italic", i + 1
    elif char == "*":
        kind, i = "bold", i + 1
    elif char == "~":
        kind, i = "strikethrough", i + 1
    elif char == "|":
        if not text.startswith("||", i):
            raise _reserved(char)
        kind, i = "spoiler", i + 2
    elif char == "[":
        kind, i = "text_link", i + 1
    elif char == "!":
        if not text.startswith("![", i):
            raise _reserved(char)
        kind, i = "custom_emoji", i + 2
    elif char == "`":
        if text.startswith("```", i):
            kind = "pre"
            i += 3
            lang_end = i
            while lang_end < n and not text[lang_end].isspace() and text[lang_end] != "`":
                lang_end += 1
            if lang_end != i and lang_end < n and text[lang_end] != "`":
                argument = text[i:lang_end]
                i = lang_end
            # one line break right after the opening ``` is not part of the text
            if i < n and text[i] in "\r\n":
                i += 2 if i + 1 < n and text[i + 1] in "\r\n" and text[i] != text[i + 1] else 1
        else:
            kind, i = "code", i + 1
    else:
        raise _reserved(char)
    stack.append(_Open(kind, argument, utf16, start_bytes))
    return i


def _close_mdv2(
    top: _Open, text: str, i: int, utf16: int, plain: str, entities: list[Entity]
) -> int:
    kind = top.kind
    length = utf16 - top.utf16_start
    entity: Entity = {"type": kind, "offset": top.utf16_start, "length": length}
    skip = length <= 0
    if kind in ("underline", "spoiler"):
        i += 2
    elif kind == "pre":
        i += 3
        if top.argument:
            entity["language"] = top.argument
    elif kind in ("text_link", "custom_emoji"):
        i += 1
        if i >= len(text) or text[i] != "(":
            if kind == "custom_emoji":
                raise _cant_parse("Custom emoji entity must contain a tg://emoji URL")
            url_text = _utf16_slice(plain, top.utf16_start, length)
        else:
            url_start = i + 1
            chars: list[str] = []
            i += 1
            while i < len(text) and text[i] != ")":
                if text[i] == "\\" and i + 1 < len(text) and 0 < ord(text[i + 1]) <= 126:
                    chars.append(text[i + 1])
                    i += 2
                    continue
                chars.append(text[i])
                i += 1
            if i >= len(text):
                raise _cant_parse(
                    f"Can't find end of a URL at byte offset {_byte_offset(text, url_start)}"
                )
            i += 1
            url_text = "".join(chars)
        if kind == "custom_emoji":
            match = re.fullmatch(r"tg://emoji\?id=(\d+)", url_text)
            if not match or not 0 < int(match.group(1)) <= _INT64_MAX:
                raise _cant_parse("Invalid custom emoji identifier specified")
            entity["custom_emoji_id"] = match.group(1)
        else:
            url = _check_url(url_text)
            if url is None:
                skip = True
            else:
                entity["url"] = url
    else:
        i += 1
    if not skip:
        entities.append(entity)
    return i


# -- legacy Markdown -------------------------------------------------------------------


def parse_markdown(text: str) -> tuple[str, list[Entity]]:
    out: list[str] = []
    utf16 = 0
    entities: list[Entity] = []
    n = len(text)
    i = 0
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            utf16 += 1
            i += 2
            continue
        if char not in "_*`[":
            out.append(char)
            utf16 += _u16(char)
            i += 1
            continue
        begin_bytes = _byte_offset(text, i)
        end_char = "]" if char == "[" else char
        is_pre = text.startswith("```", i)
        i += 3 if is_pre else 1
        language = ""
        if is_pre:
            lang_end = i
            while lang_end < n and not text[lang_end].isspace() and text[lang_end] != "`":
                lang_end += 1
            if lang_end != i and lang_end < n and text[lang_end] != "`":
                language, i = text[i:lang_end], lang_end
        start = utf16
        while i < n and (text[i] != end_char or (is_pre and not text.startswith("```", i))):
            out.append(text[i])
            utf16 += _u16(text[i])
            i += 1
        if i >= n:
            raise _cant_parse(f"Can't find end of the entity starting at byte offset {begin_bytes}")
        i += 3 if is_pre else 1
        length = utf16 - start
        entity: Entity = {"offset": start, "length": length}
        if char == "_":
            entity["type"] = "italic"
        elif char == "*":
            entity["type"] = "bold"
        elif char == "`":
            entity["type"] = "pre" if is_pre else "code"
            if language:
                entity["language"] = language
        else:
            url_text = _utf16_slice("".join(out), start, length)
            if i < n and text[i] == "(":
                close = text.find(")", i)
                if close == -1:
                    raise _cant_parse(
                        f"Can't find end of a URL at byte offset {_byte_offset(text, i + 1)}"
                    )
                url_text, i = text[i + 1 : close], close + 1
            url = _check_url(url_text)
            if url is None:
                continue
            entity["type"], entity["url"] = "text_link", url
        if length > 0:
            entities.append(entity)
    return "".join(out), sort_entities(entities)


# -- explicit entities, trimming, auto-detection -----------------------------------------


def check_entities(text: str, entities: list[Entity]) -> list[Entity]:
    """Validate an explicit ``entities`` / ``caption_entities`` array."""
    total = utf16_len(text)
    checked: list[Entity] = []
    for entity in entities:
        kind, offset, length = entity["type"], entity["offset"], entity["length"]
        if kind not in ENTITY_TYPES:
            raise bad_request("can't parse MessageEntity: Unsupported type specified")
        required = {"text_link": "url", "text_mention": "user", "custom_emoji": "custom_emoji_id"}
        if kind in required and required[kind] not in entity:
            raise bad_request(f"can't parse MessageEntity: Can't find field \"{required[kind]}\"")
        if offset < 0:
            raise bad_request(f"receive an entity with incorrect offset {offset}")
        if length <= 0:
            continue
        if offset >= total:
            raise bad_request(f"entity begins after the end of the text at UTF-16 offset {offset}")
        if offset + length > total:
            raise bad_request(
                f"entity beginning at UTF-16 offset {offset} ends after the end of the text "
                f"at UTF-16 offset {offset + length}"
            )
        if kind == "text_link":
            url = _check_url(str(entity["url"]))
            if url is None:
                reason = "URL host is empty" if not entity["url"] else "Wrong HTTP URL"
                raise bad_request(f"entity URL '{entity['url']}' is invalid: {reason}")
            entity = {**entity, "url": url}
        if kind == "custom_emoji" and not str(entity["custom_emoji_id"]).isdigit():
            raise bad_request(
                'can\'t parse MessageEntity: Field "custom_emoji_id" must be a valid Number'
            )
        checked.append(dict(entity))
    return checked


def _trim(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Telegram drops leading and trailing whitespace, shifting/clipping entities."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    total = utf16_len(stripped)
    result: list[Entity] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            result.append({**entity, "offset": start, "length": end - start})
    return stripped, result


_AUTO_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("bot_command", re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?!\w)")),
    ("email", re.compile(r"(?<![\w.@])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")),
    (
        "url",
        re.compile(
            r"(?<![\w@])(?:https?://)?(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?::\d+)?(?:/[^\s]*)?", re.I
        ),
    ),
    ("mention", re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}(?!\w)")),
    ("hashtag", re.compile(r"(?<![\w#])#\w*[^\W\d]\w*")),
    ("cashtag", re.compile(r"(?<![\w$])\$[A-Z]{3,8}(?![\w])")),
]
_OPAQUE = frozenset({"code", "pre", "text_link", "text_mention", "custom_emoji", "url", "email"})


def detect_entities(text: str, entities: list[Entity]) -> list[Entity]:
    """Add the entities Telegram detects on its own; keeps the explicit ones."""
    taken = [(e["offset"], e["offset"] + e["length"]) for e in entities if e["type"] in _OPAQUE]
    found: list[Entity] = []
    for kind, pattern in _AUTO_PATTERNS:
        for match in pattern.finditer(text):
            value = match.group(0).rstrip(".,;:!?)")
            if kind == "url" and "." not in value.split("/")[0 if "://" not in value else 2]:
                continue
            start = utf16_len(text[: match.start()])
            end = start + utf16_len(value)
            if any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            taken.append((start, end))
            found.append({"type": kind, "offset": start, "length": end - start})
    return sort_entities(entities + found)


def sort_entities(entities: list[Entity]) -> list[Entity]:
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def format_text(
    text: str,
    parse_mode: str | None,
    entities: list[Entity] | None,
) -> tuple[str, list[Entity]]:
    """Parse ``text`` as Telegram does: returns the plain text and its entities.

    ``entities`` (explicit) win over ``parse_mode``; whitespace at both ends is dropped.
    """
    if entities:
        plain, found = text, check_entities(text, entities)
    elif parse_mode:
        mode = parse_mode.lower()
        if mode == "html":
            plain, found = parse_html(text)
        elif mode == "markdownv2":
            plain, found = parse_markdown_v2(text)
        elif mode == "markdown":
            plain, found = parse_markdown(text)
        else:
            raise bad_request("unsupported parse_mode")
    else:
        plain, found = text, []
    plain, found = _trim(plain, found)
    return plain, detect_entities(plain, found)
