"""The base every other package stands on: paths, version, CliError, strict YAML, id patterns.

It imports nothing of the project (an import-linter contract in pyproject.toml holds it to that).
"""
