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

# sendPoll: "Poll question, 1-300 characters", "A JSON-serialized list of 1-12 answer
# options", InputPollOption.text "Option text, 1-100 characters"
POLL_QUESTION_MAX = 300
POLL_OPTIONS_MIN = 1
POLL_OPTIONS_MAX = 12
POLL_OPTION_MAX = 100
# sendLocation: live_period "should be between 60 and 86400, or 0x7FFFFFFF for live
# locations that can be edited indefinitely"; heading "between 1 and 360";
# proximity_alert_radius "between 1 and 100000"; horizontal_accuracy "0-1500"
LIVE_PERIOD_MIN = 60
LIVE_PERIOD_MAX = 86400
LIVE_PERIOD_FOREVER = 0x7FFFFFFF
HEADING_MAX = 360
PROXIMITY_ALERT_RADIUS_MAX = 100000
HORIZONTAL_ACCURACY_MAX = 1500
# sendDice.emoji: 'Dice can have values 1-6 for "🎲", "🎯" and "🎳", values 1-5 for "🏀"
# and "⚽", and values 1-64 for "🎰"'
DICE_VALUES = {"🎲": 6, "🎯": 6, "🎳": 6, "🏀": 5, "⚽": 5, "🎰": 64}
