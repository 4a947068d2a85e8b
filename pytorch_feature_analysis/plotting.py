"""plotting."""

__all__ = []
