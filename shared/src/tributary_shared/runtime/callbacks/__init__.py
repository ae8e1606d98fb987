"""Workflow callbacks (webhooks): configuration, the Redis store of their schedule and
tries, the signed ``POST`` of one try, and the deliverer that runs them.

Import the modules themselves: the gateway reads ``settings`` and ``store`` and must
not load the HTTP client that ``sender`` and ``deliverer`` use.
"""
