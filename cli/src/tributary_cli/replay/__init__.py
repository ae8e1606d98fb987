"""``tributary replay``: a workflow's run rebuilt from its events, and run again.

``source`` reads the events (Kafka, export files), ``timeline`` builds the run from
them (pure), ``render`` shows it as text or JSON, ``command`` is the subcommand;
``rerun`` runs the workflow again through the current code with the recorded
answers (``recorded``, ``substitutes``, ``pipeline``, ``report``).
"""
