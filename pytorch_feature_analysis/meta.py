"""meta."""

__all__ = []
