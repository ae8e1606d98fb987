"""The core: Tributary's rules with no I/O.

Events and their topics, the error taxonomy and its recovery policies, the
workflow and step states with every transition between them, the Redis key
layout and the topology of services. Nothing here imports Kafka, Redis, HTTP
or the LLM SDK; the runtime executes what the core decides.
"""
