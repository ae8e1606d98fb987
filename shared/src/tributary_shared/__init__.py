"""Tributary's common library, in two layers.

``tributary_shared.core``
    Pure rules: events, errors and their policies, states and transitions,
    ports (the interfaces handlers talk to), Redis key names, the topology.
``tributary_shared.runtime``
    Adapters and plumbing: Kafka, Redis, the LLM client, settings, workers.
``tributary_shared.twins``
    In-memory twins of the runtime's adapters, held to the same contract tests.

The core imports nothing from the runtime. Developer tooling (document
generators, the admin CLI) lives apart, in the ``tributary-devtools`` package
under ``shared/devtools``, so no service image carries it.
"""
