"""parallel."""

__all__ = []
