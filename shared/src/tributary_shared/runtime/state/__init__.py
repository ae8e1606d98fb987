"""The Redis adapter of the workflow store and its atomic program."""

from tributary_shared.runtime.state.store import RedisWorkflowStore, compile_transition

__all__ = ["RedisWorkflowStore", "compile_transition"]
