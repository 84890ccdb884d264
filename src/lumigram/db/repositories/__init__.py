"""Implementations of the service gateways over an AsyncSession. They never commit."""
