"""models."""

__all__ = []
