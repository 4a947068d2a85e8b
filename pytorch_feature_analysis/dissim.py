"""dissim."""

__all__ = []
