"""Tributary's local stack without containers.

Kafka (KRaft, jars from Maven Central) and Redis run as child processes of the
stack, each service as its own OS process; everything is recorded under the
run dir so ``down`` stops exactly what ``up`` started. The same objects back
the CLI (``python -m tributary_devstack``) and the pytest suite.
"""

from tributary_devstack.config import StackConfig
from tributary_devstack.llm import LlmEndpoint
from tributary_devstack.process import ManagedProcess, ServiceProcess
from tributary_devstack.readiness import ComponentStartError
from tributary_devstack.stack import ComponentStatus, Stack
from tributary_devstack.topics import TopicError, TopicPlan

__all__ = [
    "ComponentStartError",
    "ComponentStatus",
    "LlmEndpoint",
    "ManagedProcess",
    "ServiceProcess",
    "Stack",
    "StackConfig",
    "TopicError",
    "TopicPlan",
]
