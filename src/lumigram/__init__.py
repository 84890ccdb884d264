"""Lumigram: a self-hosted paid AI image and video generation bot for Telegram."""

__version__ = "0.1.0"
