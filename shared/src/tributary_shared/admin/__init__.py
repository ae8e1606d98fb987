"""Operator commands: ``python -m tributary_shared.admin --help``."""
