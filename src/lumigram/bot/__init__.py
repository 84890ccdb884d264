"""The Telegram adapter: aiogram routers, middlewares, keyboards and rendering."""
