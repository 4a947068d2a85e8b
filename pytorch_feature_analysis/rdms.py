"""rdms."""

__all__ = []
