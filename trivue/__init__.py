"""Trivue: measure household waste sorting quality from collection-truck cameras."""

__version__ = "0.1.0"
