"""anova."""

__all__ = []
