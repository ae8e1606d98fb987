"""The runtime: the adapters that carry out the core's decisions.

Kafka (consumer runtime, publisher, dead letters), Redis (workflow store,
budget ledger, call history, cancellation signal), the LLM client over the
``openai`` SDK, settings, logging, metrics and the assembly of a worker.
"""
