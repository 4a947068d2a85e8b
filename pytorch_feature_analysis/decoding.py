"""decoding."""

__all__ = []
