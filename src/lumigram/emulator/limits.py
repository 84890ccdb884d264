"""Hard limits of the Bot API that the emulator enforces.

Most come from the prose of the method tables (``tests/emulator/test_spec_limits.py``
checks each one against the descriptions in the shared schema); the file-size limits
come from the "Sending files" section, which is not in the schema.
"""

from __future__ import annotations

MB = 1024 * 1024

# sendMessage.text / editMessageText.text: "1-4096 characters after entities parsing"
TEXT_MAX = 4096
# captions: "0-1024 characters after entities parsing"
CAPTION_MAX = 1024
# InlineKeyboardButton.callback_data: "1-64 bytes"
CALLBACK_DATA_MAX_BYTES = 64
# sendMediaGroup.media: "must include 2-10 items"
MEDIA_GROUP_MIN = 2
MEDIA_GROUP_MAX = 10
# answerCallbackQuery.text: "0-200 characters"
CALLBACK_ANSWER_TEXT_MAX = 200
# getUpdates.limit / getStarTransactions.limit: "Values between 1-100 are accepted"
UPDATES_LIMIT_MAX = 100
TRANSACTIONS_LIMIT_MAX = 100
# setWebhook.secret_token: "1-256 characters"; setWebhook.max_connections: "1-100"
SECRET_TOKEN_MAX = 256
WEBHOOK_MAX_CONNECTIONS = 100
# setMyCommands: "At most 100 commands"; BotCommand.command "1-32 characters";
# BotCommand.description "1-256 characters"
COMMANDS_MAX = 100
COMMAND_MAX = 32
COMMAND_DESCRIPTION_MAX = 256

# sendInvoice / createInvoiceLink
INVOICE_TITLE_MAX = 32  # "Product name, 1-32 characters"
INVOICE_DESCRIPTION_MAX = 255  # "Product description, 1-255 characters"
INVOICE_PAYLOAD_MAX_BYTES = 128  # "Bot-defined invoice payload, 1-128 bytes"
STARS_CURRENCY = "XTR"
SUBSCRIPTION_PERIOD = 2592000  # "it must always be 2592000 (30 days)"
SUBSCRIPTION_MAX_PRICE = 10000  # "Subscription price must no exceed 10000 Telegram Stars"
# answerPreCheckoutQuery: "The Bot API must receive an answer within 10 seconds"
PRE_CHECKOUT_TIMEOUT = 10.0

# sendPhoto.photo: "at most 10 MB", "width and height must not exceed 10000 in total",
# "Width and height ratio must be at most 20"
PHOTO_UPLOAD_MAX = 10 * MB
PHOTO_MAX_DIMENSIONS_SUM = 10000
PHOTO_MAX_RATIO = 20
# "Sending files": multipart uploads of other files up to 50 MB; by URL 5 MB for
# photos and 20 MB for other content; getFile downloads up to 20 MB.
UPLOAD_MAX = 50 * MB
URL_PHOTO_MAX = 5 * MB
URL_FILE_MAX = 20 * MB
DOWNLOAD_MAX = 20 * MB
