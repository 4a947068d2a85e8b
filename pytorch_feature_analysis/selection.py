"""selection."""

__all__ = []
