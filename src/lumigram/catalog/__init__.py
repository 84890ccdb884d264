"""The model catalog: which models the bot offers, their settings and prices.

The catalog itself is ``models.toml`` in this package; ``load_catalog`` reads
and validates it (optionally merged with an operator override file).
"""

from lumigram.catalog.loader import (
    DEMO_PROVIDER,
    PROVIDERS,
    Catalog,
    CatalogError,
    CostSpec,
    Descriptions,
    ModelCapabilities,
    ModelDefaults,
    ModelSpec,
    ProviderCostSpec,
    Settings,
    SettingsError,
    load_catalog,
)

__all__ = [
    "DEMO_PROVIDER",
    "PROVIDERS",
    "Catalog",
    "CatalogError",
    "CostSpec",
    "Descriptions",
    "ModelCapabilities",
    "ModelDefaults",
    "ModelSpec",
    "ProviderCostSpec",
    "Settings",
    "SettingsError",
    "load_catalog",
]
