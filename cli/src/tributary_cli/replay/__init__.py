"""``tributary replay``: a workflow's run rebuilt from its events.

``source`` reads the events (Kafka, export files), ``timeline`` builds the run from
them (pure), ``render`` shows it as text or JSON, ``command`` is the subcommand.
"""
