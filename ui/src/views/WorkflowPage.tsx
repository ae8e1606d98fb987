// One workflow: its plan as a DAG, live; the timeline of its events; each step's calls;
// the budget, the answer, cancel, open input requests and the replay command.

import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, allCalls, cancelWorkflow, getWorkflow } from "../api";
import { TERMINAL_STATUSES, tokens, usd, when } from "../format";
import { type StreamState, followEvents } from "../stream";
import type { LoggedEvent, RecordedCall, Workflow } from "../types";
import { CallItems } from "./Calls";
import { Dag } from "./Dag";
import { HumanInput } from "./HumanInput";
import { StatusBadge } from "./StatusBadge";
import { Steps } from "./Steps";
import { Timeline } from "./Timeline";

const REFRESH_MS = 250;
const CALLS_REFRESH_MS = 1000;

const STREAM_LABELS: Record<StreamState, string> = {
  connecting: "Connecting to the event stream…",
  live: "Live",
  reconnecting: "Disconnected, reconnecting…",
  ended: "Ended: every event received",
  failed: "The event stream was refused",
};

/** Runs `task` at most once per `ms`, and once more after the last call. */
function throttled(task: () => void, ms: number): () => void {
  let timer = 0;
  return () => {
    if (timer) return;
    timer = window.setTimeout(() => {
      timer = 0;
      task();
    }, ms);
  };
}

export function WorkflowPage(props: { apiKey: string; workflowId: string }) {
  const { apiKey, workflowId } = props;
  const [workflow, setWorkflow] = useState<Workflow | null>(null);
  const [loadError, setLoadError] = useState<ApiError | Error | null>(null);
  const [events, setEvents] = useState<LoggedEvent[]>([]);
  const [calls, setCalls] = useState<RecordedCall[]>([]);
  const [stream, setStream] = useState<{ state: StreamState; detail?: string }>({ state: "connecting" });
  const [notice, setNotice] = useState<string | null>(null);
  const refreshers = useRef<{ workflow: () => void; calls: () => void }>({ workflow() {}, calls() {} });

  useEffect(() => {
    let stopped = false;
    const loadWorkflow = async () => {
      try {
        const loaded = await getWorkflow(apiKey, workflowId);
        if (!stopped) {
          setWorkflow(loaded);
          setLoadError(null);
        }
      } catch (err) {
        if (!stopped) setLoadError(err instanceof Error ? err : new Error(String(err)));
      }
    };
    const loadCalls = async () => {
      try {
        const loaded = await allCalls(apiKey, workflowId);
        if (!stopped) setCalls(loaded);
      } catch {
        // The calls are details: the page stands without them until the next event.
      }
    };
    refreshers.current = {
      workflow: throttled(() => void loadWorkflow(), REFRESH_MS),
      calls: throttled(() => void loadCalls(), CALLS_REFRESH_MS),
    };
    void loadWorkflow();
    void loadCalls();
    const stop = followEvents({
      key: apiKey,
      workflowId,
      onEvent: (event) => {
        setEvents((seen) => [...seen, event]);
        refreshers.current.workflow();
        refreshers.current.calls();
      },
      onState: (state, detail) => {
        setStream({ state, detail });
        if (state === "live") refreshers.current.workflow(); // what changed while away
      },
    });
    return () => {
      stopped = true;
      stop();
    };
  }, [apiKey, workflowId]);

  if (!workflow) {
    if (loadError) {
      const missing = loadError instanceof ApiError && loadError.status === 404;
      return (
        <section class="card">
          <h1>{missing ? "Workflow not found" : "Could not load the workflow"}</h1>
          <p class="error" role="alert">
            {missing
              ? `No workflow ${workflowId} that this key's tenant owns (or it was deleted).`
              : loadError.message}
          </p>
          <p><a href="#/">Back to the workflows</a></p>
        </section>
      );
    }
    return <p class="state" role="status">Loading workflow {workflowId}…</p>;
  }

  const ended = TERMINAL_STATUSES.has(workflow.status);
  const replay = `tributary replay ${workflow.workflow_id}`;
  const budget = workflow.budget;
  const planningCalls = calls.filter((c) => c.step_id === null);

  return (
    <article class="workflow" aria-labelledby="wf-title" data-status={workflow.status}>
      <div class="wf-head">
        <div>
          <p class="crumbs"><a href="#/">Workflows</a> / <span class="mono">{workflow.workflow_id}</span></p>
          <h1 id="wf-title">{workflow.task}</h1>
          <p class="muted">
            <StatusBadge status={workflow.status} /> · tenant {workflow.tenant_id} · created{" "}
            {when(workflow.created_at)} · updated {when(workflow.updated_at)}
          </p>
        </div>
        <div class="wf-actions">
          <p class={`stream stream-${stream.state}`} role="status" aria-live="polite" data-stream-state={stream.state}>
            {STREAM_LABELS[stream.state]}
            {stream.detail ? `: ${stream.detail}` : ""}
          </p>
          {!ended && (
            <button
              type="button"
              class="danger"
              onClick={async () => {
                if (!window.confirm("Cancel this workflow? Running steps stop, pending ones never start.")) return;
                try {
                  await cancelWorkflow(apiKey, workflowId);
                  setNotice("Cancel requested.");
                } catch (err) {
                  setNotice(err instanceof ApiError ? `Cancel refused: ${err.detail}` : String(err));
                }
                refreshers.current.workflow();
              }}
            >
              Cancel workflow
            </button>
          )}
        </div>
      </div>
      {notice && <p class="notice" role="status">{notice}</p>}
      {loadError && <p class="error" role="alert">Could not refresh: {loadError.message}</p>}

      <HumanInput
        apiKey={apiKey}
        workflowId={workflowId}
        requests={workflow.input_requests ?? []}
        onAnswered={() => {
          setNotice("Answer sent.");
          refreshers.current.workflow();
        }}
      />

      {workflow.result !== null && (
        <section class="card answer" aria-labelledby="answer-title">
          <h2 id="answer-title">Answer{workflow.partial ? " (partial)" : ""}</h2>
          <pre class="final-answer">{workflow.result}</pre>
        </section>
      )}
      {workflow.error && (
        <section class="card" aria-labelledby="error-title">
          <h2 id="error-title">Failed</h2>
          <p class="error">{workflow.error.code}: {workflow.error.message}</p>
        </section>
      )}

      <div class="grid">
        <section class="card plan" aria-labelledby="plan-title">
          <h2 id="plan-title">Plan</h2>
          <Dag steps={workflow.steps} />
        </section>
        <section class="card" aria-labelledby="budget-title">
          <h2 id="budget-title">Budget and usage</h2>
          <dl class="facts">
            <dt>Tokens</dt>
            <dd>{tokens(budget.used_tokens)} of {tokens(budget.limit_tokens)}</dd>
            <dt>Cost</dt>
            <dd>{usd(budget.used_cost_usd)} of {usd(budget.limit_cost_usd)}</dd>
            <dt>When exhausted</dt>
            <dd>{budget.on_exhausted}{budget.exhausted ? " (exhausted)" : ""}</dd>
            <dt>Usage</dt>
            <dd>{workflow.usage.prompt_tokens} in, {workflow.usage.completion_tokens} out</dd>
          </dl>
          <h3>Replay</h3>
          <p class="muted">Re-run its recorded history locally:</p>
          <div class="replay">
            <code id="replay-command">{replay}</code>
            <button type="button" class="secondary" onClick={() => void navigator.clipboard?.writeText(replay)}>
              Copy
            </button>
          </div>
        </section>
      </div>

      <section aria-labelledby="steps-title">
        <h2 id="steps-title">Steps</h2>
        {workflow.steps.length === 0 && <p class="state empty">No steps yet.</p>}
        <Steps steps={workflow.steps} calls={calls} />
        {planningCalls.length > 0 && (
          <details class="card">
            <summary>Planning and synthesis calls ({planningCalls.length})</summary>
            <CallItems calls={planningCalls} />
          </details>
        )}
      </section>

      <section class="card" aria-labelledby="timeline-title">
        <h2 id="timeline-title">Timeline ({events.length} events)</h2>
        <Timeline events={events} />
      </section>
    </article>
  );
}
