"""Operator commands: ``python -m tributary_devtools.admin --help``."""
