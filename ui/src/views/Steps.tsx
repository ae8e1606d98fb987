// Each step of the plan: its state, result or error, tokens, models, and its calls.

import type { RecordedCall, Step } from "../types";
import { CallItems, byIteration } from "./Calls";
import { StatusBadge } from "./StatusBadge";

export function Steps(props: { steps: Step[]; calls: RecordedCall[] }) {
  if (props.steps.length === 0) return null;
  return (
    <div class="steps">
      {props.steps.map((step) => {
        const calls = props.calls.filter((c) => c.step_id === step.step_id);
        return (
          <details key={step.step_id} id={`step-${step.step_id}`} class="step card" data-step-id={step.step_id}>
            <summary>
              <span class="step-title">{step.index + 1}. {step.title}</span>
              <StatusBadge status={step.status} />
              <span class="muted">
                {step.iterations} iterations · {step.usage.total_tokens} tokens
                {step.attempt > 1 ? ` · attempt ${step.attempt}` : ""}
              </span>
            </summary>
            <dl class="facts">
              <dt>Instruction</dt>
              <dd>{step.instruction}</dd>
              {step.depends_on.length > 0 && (
                <>
                  <dt>Depends on</dt>
                  <dd class="mono">{step.depends_on.join(", ")}</dd>
                </>
              )}
              <dt>Models</dt>
              <dd class="mono">{step.models.length ? step.models.join(", ") : "none yet"}</dd>
              <dt>Tokens</dt>
              <dd>
                {step.usage.prompt_tokens} in, {step.usage.completion_tokens} out
              </dd>
              {step.result !== null && (
                <>
                  <dt>Result</dt>
                  <dd><pre>{step.result}</pre></dd>
                </>
              )}
              {step.error && (
                <>
                  <dt>Error</dt>
                  <dd class="error">{step.error.code}: {step.error.message}{step.error.retryable ? " (retryable)" : ""}</dd>
                </>
              )}
            </dl>
            {calls.length === 0 ? (
              <p class="muted">No recorded calls for this step (yet, or call recording is off).</p>
            ) : (
              byIteration(calls).map((group) => (
                <section key={group.label} class="iteration" aria-label={group.label}>
                  <h4>{group.label}</h4>
                  <CallItems calls={group.calls} />
                </section>
              ))
            )}
          </details>
        );
      })}
    </div>
  );
}
