"""frames."""

__all__ = []
