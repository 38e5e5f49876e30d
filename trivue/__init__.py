"""Trivue: measure household waste sorting quality from collection-truck cameras.

The top of the house: the ``trivue`` command, the embedded broker, the demo and the simulator.
The version lives in ``base.version``.
"""
