"""The one version number: the CLI, the API and the simulated model info all print this."""

__version__ = "0.1.0"
