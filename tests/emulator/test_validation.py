"""Requests checked against the spec, answered with Telegram's error shapes."""

from __future__ import annotations

import aiohttp
import pytest

from lumigram.emulator import TelegramEmulator

from .conftest import RawApi, dumps


async def test_unknown_method_is_404(api: RawApi) -> None:
    status, body = await api.call("sendTelepathy", chat_id=1)
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_bad_tokens(api: RawApi, emu: TelegramEmulator) -> None:
    status, body = await api.call("getMe", token="123:unknown")
    assert (status, body) == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    status, body = await api.call("getMe", token="not-a-token")
    assert (status, body["description"]) == (404, "Not Found")
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{emu.base_url}/nothing") as response,
    ):
        assert response.status == 404
        assert await response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_errors_are_recorded(api: RawApi, emu: TelegramEmulator) -> None:
    await api.call("getMe")
    await api.call("sendMessage", chat_id=1)
    assert [r.method for r in emu.requests] == ["getMe", "sendMessage"]
    assert emu.requests[0].status == 200
    assert emu.requests[0].response["result"]["is_bot"] is True
    assert [(r.method, r.status) for r in emu.errors] == [("sendMessage", 400)]
    emu.assert_no_errors(allow=["message text is empty"])
    with pytest.raises(AssertionError, match=r"(?s)sendMessage.*message text is empty"):
        emu.assert_no_errors()


async def test_missing_required_parameters(api: RawApi, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    assert await api.error("sendMessage", text="hi") == "Bad Request: chat_id is empty"
    assert await api.error("sendMessage", chat_id=user.id) == "Bad Request: message text is empty"
    assert (
        await api.error("sendMessage", chat_id=user.id, text="")
        == "Bad Request: message text is empty"
    )
    assert (
        await api.error("sendPhoto", chat_id=user.id)
        == "Bad Request: there is no photo in the request"
    )
    assert await api.error("getFile") == "Bad Request: file_id not specified"
    assert (
        await api.error("answerCallbackQuery")
        == 'Bad Request: parameter "callback_query_id" is required'
    )
    assert await api.error("sendMessage", chat_id=999, text="x") == "Bad Request: chat not found"
    assert (
        await api.error("sendMessage", chat_id=user.id, text="   ")
        == "Bad Request: text must be non-empty"
    )


async def test_wrong_scalar_types(api: RawApi, emu: TelegramEmulator) -> None:
    user = emu.user(1001)
    assert await api.error("sendMessage", chat_id=[1], text="x") == (
        'Bad Request: parameter "chat_id" must be of type Integer or String'
    )
    assert await api.error(
        "sendMessage", chat_id=user.id, text="x", disable_notification="yes"
    ) == ('Bad Request: parameter "disable_notification" must be of type Boolean')
    assert (
        await api.error("getUpdates", limit="many")
        == 'Bad Request: parameter "limit" must be of type Integer'
    )
    assert await api.error("sendMessage", chat_id=user.id, text={"a": 1}) == (
        'Bad Request: parameter "text" must be of type String'
    )


async def test_nested_objects_are_validated_field_by_field(
    api: RawApi, emu: TelegramEmulator
) -> None:
    chat = emu.user(1001).id

    async def markup_error(markup: object) -> str:
        return await api.error("sendMessage", chat_id=chat, text="x", reply_markup=markup)

    assert (
        await markup_error({"inline_keyboard": "bad"})
        == 'Bad Request: field "inline_keyboard" must be of type Array'
    )
    assert await markup_error({"inline_keyboard": [[{"callback_data": "x"}]]}) == (
        "Bad Request: can't parse inline keyboard button: Can't find field \"text\""
    )
    assert (
        await markup_error(
            {
                "inline_keyboard": [
                    [{"text": "q", "switch_inline_query_chosen_chat": {"allow_user_chats": "yes"}}]
                ]
            }
        )
        == "Bad Request: can't parse inline keyboard button: "
        'Field "allow_user_chats" must be of type Boolean'
    )
    assert await markup_error({"keyboard": [[{"text": "A"}]], "selective": "yes"}) == (
        'Bad Request: field "selective" must be of type Boolean'
    )
    assert (
        await markup_error({"force_reply": "yes"})
        == 'Bad Request: field "force_reply" must be of type Boolean'
    )
    assert (
        await markup_error({"whatever": 1})
        == "Bad Request: can't parse reply keyboard markup JSON object"
    )
    assert (
        await api.error(
            "sendMessage", chat_id=chat, text="x", link_preview_options={"is_disabled": "yes"}
        )
        == 'Bad Request: field "is_disabled" must be of type Boolean'
    )
    assert await api.error(
        "sendMessage", chat_id=chat, text="x", reply_parameters={"quote": "q"}
    ) == ('Bad Request: can\'t find field "message_id"')
    assert await api.error(
        "sendMessage", chat_id=chat, text="x", reply_parameters={"message_id": 99}
    ) == ("Bad Request: message to be replied not found")
    assert (
        await api.error(
            "setMyCommands",
            commands=[{"command": "start", "description": "go"}],
            scope={"type": "nope"},
        )
        == 'Bad Request: unsupported scope type "nope"'
    )
    assert await api.error("setMyCommands", commands=[{"command": "start"}]) == (
        'Bad Request: can\'t find field "description"'
    )
    assert (
        await api.error(
            "sendMediaGroup",
            chat_id=chat,
            media=[{"type": "photo"}, {"type": "photo", "media": "x"}],
        )
        == 'Bad Request: can\'t find field "media"'
    )
    assert await api.error(
        "sendInvoice",
        chat_id=chat,
        title="t",
        description="d",
        payload="p",
        currency="XTR",
        prices=[{"label": "x", "amount": "lots"}],
    ) == ('Bad Request: field "amount" must be of type Number')


async def test_inline_button_rules(api: RawApi, emu: TelegramEmulator) -> None:
    chat = emu.user(1001).id

    async def button_error(button: dict[str, object]) -> str:
        return await api.error(
            "sendMessage", chat_id=chat, text="x", reply_markup={"inline_keyboard": [[button]]}
        )

    assert (
        await button_error({"text": "b", "callback_data": "x" * 65})
        == "Bad Request: BUTTON_DATA_INVALID"
    )
    assert (
        await button_error({"text": "b", "callback_data": "é" * 33})
        == "Bad Request: BUTTON_DATA_INVALID"
    )
    assert await button_error({"text": "b"}) == (
        "Bad Request: can't parse inline keyboard button: "
        "Text buttons are unallowed in the inline keyboard"
    )
    assert await button_error({"text": "b", "callback_data": ""}) == (
        "Bad Request: can't parse inline keyboard button: "
        "Text buttons are unallowed in the inline keyboard"
    )
    both = await button_error({"text": "b", "callback_data": "x", "url": "https://example.com"})
    assert both.startswith(
        "Bad Request: can't parse inline keyboard button: exactly one of the optional fields"
    )
    assert await button_error({"text": "b", "url": "not-a-url"}) == (
        "Bad Request: inline keyboard button URL 'not-a-url' is invalid: Wrong HTTP URL"
    )
    assert await button_error({"text": "b", "url": "ftp://example.com"}) == (
        "Bad Request: inline keyboard button URL 'ftp://example.com' is invalid: "
        "Unsupported URL protocol"
    )
    assert await button_error({"text": "b", "pay": True}) == "Bad Request: BUTTON_TYPE_INVALID"
    status, body = await api.call(
        "sendMessage",
        chat_id=chat,
        text="x",
        reply_markup={"inline_keyboard": [[{"text": "b", "callback_data": "x" * 64}]]},
    )
    assert status == 200
    assert body["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "x" * 64


async def test_parameters_from_query_form_json_and_multipart(
    api: RawApi, emu: TelegramEmulator
) -> None:
    user = emu.user(1001)
    markup = dumps({"inline_keyboard": [[{"text": "go", "callback_data": "go"}]]})
    status, body = await api.get(
        "sendMessage", chat_id=str(user.id), text="from query", reply_markup=markup
    )
    assert status == 200
    assert body["result"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "go"
    status, body = await api.form("sendMessage", {"chat_id": str(user.id), "text": "from form"})
    assert status == 200
    assert body["result"]["text"] == "from form"
    status, body = await api.call(
        "sendMessage", chat_id=user.id, text="from json", disable_notification=True
    )
    assert status == 200
    assert body["result"]["text"] == "from json"
    form = aiohttp.FormData()
    form.add_field("chat_id", str(user.id))
    form.add_field("text", "from multipart")
    form.add_field("reply_markup", markup)
    status, body = await api.form("sendMessage", form)
    assert status == 200
    assert body["result"]["text"] == "from multipart"
    assert [m.text for m in user.bot_messages] == [
        "from query",
        "from form",
        "from json",
        "from multipart",
    ]
    status, body = await api.form("SENDMESSAGE", {"chat_id": str(user.id), "text": "any case"})
    assert status == 200


async def test_edit_methods_need_a_message_or_inline_id(api: RawApi, emu: TelegramEmulator) -> None:
    chat = emu.user(1001).id
    assert await api.error("editMessageText", text="x") == "Bad Request: chat_id is empty"
    assert await api.error("editMessageText", chat_id=chat, text="x") == (
        "Bad Request: message identifier is not specified"
    )
    assert (
        await api.error("editMessageText", chat_id=chat, message_id=1)
        == "Bad Request: message text is empty"
    )
    assert (
        await api.error("editMessageText", inline_message_id="abc", text="x")
        == "Bad Request: MESSAGE_ID_INVALID"
    )
    assert await api.error("editMessageReplyMarkup", chat_id=chat, message_id=42) == (
        "Bad Request: message to edit not found"
    )
    assert (
        await api.error("deleteMessage", chat_id=chat, message_id=42)
        == "Bad Request: message to delete not found"
    )


async def test_unimplemented_method_is_reported(api: RawApi, emu: TelegramEmulator) -> None:
    status, body = await api.call("sendVoice", chat_id=1)
    assert status == 501
    assert "sendVoice" in body["description"]
    assert emu.errors[-1].method == "sendVoice"
