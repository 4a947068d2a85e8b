"""stimuli."""

__all__ = []
