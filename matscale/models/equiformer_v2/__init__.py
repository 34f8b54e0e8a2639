"""EquiformerV2 for matscale; importing this package registers the `equiformer_v2` architecture."""
from .model import EquiformerV2, build_equiformer_v2  # noqa: F401  (registers on import)

__all__ = ["EquiformerV2", "build_equiformer_v2"]
