"""A typed client of the Tributary HTTP API: ``Tributary`` blocks, ``AsyncTributary`` awaits.

from tributary_client import Tributary

with Tributary() as client:             # TRIBUTARY_URL, TRIBUTARY_API_KEY
    started = client.start("Compare three databases for a chat app")
    workflow = client.wait(started.workflow_id)
    print(workflow.status, workflow.result)
"""

from tributary_client._async import AsyncTributary
from tributary_client._config import DEFAULT_BASE_URL, DEFAULT_TIMEOUT
from tributary_client._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ConnectionError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TributaryError,
    UnavailableError,
    ValidationError,
    WaitTimeoutError,
)
from tributary_client._events import TERMINAL_EVENT_TYPES, WorkflowEvent
from tributary_client._models import (
    Budget,
    CallList,
    CallPayloadRef,
    ErrorInfo,
    Key,
    KeyCreated,
    KeyList,
    LLMCall,
    LLMCallBody,
    LLMRequest,
    LLMResponse,
    LLMToolCall,
    LLMTry,
    RecordedCall,
    Step,
    StepStatus,
    StreamToken,
    TokenUsage,
    ToolCall,
    ToolCallBody,
    Usage,
    Workflow,
    WorkflowAccepted,
    WorkflowCancelled,
    WorkflowLinks,
    WorkflowOptions,
    WorkflowPage,
    WorkflowStatus,
    WorkflowSummary,
)
from tributary_client._retry import RetryPolicy
from tributary_client._shared import VERSION as __version__
from tributary_client._sync import Tributary

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "TERMINAL_EVENT_TYPES",
    "APIError",
    "AsyncTributary",
    "AuthenticationError",
    "BadRequestError",
    "Budget",
    "CallList",
    "CallPayloadRef",
    "ConflictError",
    "ConnectionError",
    "ErrorInfo",
    "Key",
    "KeyCreated",
    "KeyList",
    "LLMCall",
    "LLMCallBody",
    "LLMRequest",
    "LLMResponse",
    "LLMToolCall",
    "LLMTry",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "RecordedCall",
    "RetryPolicy",
    "ServerError",
    "Step",
    "StepStatus",
    "StreamToken",
    "TokenUsage",
    "ToolCall",
    "ToolCallBody",
    "Tributary",
    "TributaryError",
    "UnavailableError",
    "Usage",
    "ValidationError",
    "WaitTimeoutError",
    "Workflow",
    "WorkflowAccepted",
    "WorkflowCancelled",
    "WorkflowEvent",
    "WorkflowLinks",
    "WorkflowOptions",
    "WorkflowPage",
    "WorkflowStatus",
    "WorkflowSummary",
    "__version__",
]
