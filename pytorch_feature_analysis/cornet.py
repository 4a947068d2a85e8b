"""cornet."""

__all__ = []
