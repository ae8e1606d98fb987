// The gateway's response bodies, as far as the inspector reads them (docs/api.md).

export type WorkflowStatus = string;

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface ErrorInfo {
  code: string;
  message: string;
  error_class?: string;
  retryable?: boolean;
}

export interface WorkflowSummary {
  workflow_id: string;
  tenant_id: string;
  status: WorkflowStatus;
  task: string;
  created_at: string;
  updated_at: string;
}

export interface WorkflowList {
  workflows: WorkflowSummary[];
  next_cursor: string | null;
}

export interface Step {
  step_id: string;
  index: number;
  title: string;
  instruction: string;
  status: string;
  result: string | null;
  error: ErrorInfo | null;
  iterations: number;
  attempt: number;
  usage: Usage;
  models: string[];
  depends_on: string[];
}

export interface Budget {
  limit_tokens: number | null;
  used_tokens: number;
  limit_cost_usd: number | null;
  used_cost_usd: number;
  exhausted: boolean;
  on_exhausted: string;
}

/** An open request for human input (workflow status `awaiting_input`). */
export interface InputRequest {
  request_id: string;
  kind: "question" | "plan_approval" | "step_approval";
  step_id: string | null;
  question: string;
  choices: string[] | null;
  requested_at: string;
  expires_at: string | null;
}

export interface Workflow extends WorkflowSummary {
  options: Record<string, unknown>;
  steps: Step[];
  result: string | null;
  partial: boolean;
  error: ErrorInfo | null;
  usage: Usage;
  budget: Budget;
  input_requests?: InputRequest[];
}

export interface LLMTry {
  model: string;
  deployment: string;
  started_at: string;
  duration_ms: number;
  error: ErrorInfo | null;
}

export interface CallBase {
  event_id: string;
  role: string;
  step_id: string | null;
  attempt: number;
  iteration: number | null;
  sequence: number;
  started_at: string;
  duration_ms: number;
  error: ErrorInfo | null;
}

export interface LLMCall extends CallBase {
  type: "llm.called";
  tries: LLMTry[];
  body: {
    request: { messages: Record<string, unknown>[]; models: string[] };
    response: {
      content: string | null;
      tool_calls: { id: string; name: string; arguments: string }[];
      finish_reason: string;
      model: string;
      deployment: string | null;
      usage: Usage;
    } | null;
  } | null;
}

export interface ToolCall extends CallBase {
  type: "tool.called";
  call_id: string;
  name: string;
  outcome: string;
  failed: boolean;
  body: { arguments: string; result: string } | null;
}

export type RecordedCall = LLMCall | ToolCall;

export interface CallList {
  calls: RecordedCall[];
  next_after: string | null;
}

/** One event of a workflow's log, as the event stream delivers it. */
export interface LoggedEvent {
  id: string;
  type: string;
  data: Record<string, unknown>;
}
