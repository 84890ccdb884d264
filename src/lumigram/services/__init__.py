"""Use cases. Each public method is one transaction: it commits what it changed.

Services depend on the Protocol gateways in ``ports`` only, never on
SQLAlchemy, aiogram or HTTP types, so the bot, the API and the workers can
share them.
"""
