"""activations."""

__all__ = []
