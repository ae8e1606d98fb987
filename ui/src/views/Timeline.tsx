// Every event of the workflow's log in order, as the event stream delivered it.

import { when } from "../format";
import type { LoggedEvent } from "../types";

function summary(event: LoggedEvent): string {
  const data = event.data;
  const step = typeof data.step_id === "string" ? `step ${data.step_id}` : "";
  switch (event.type) {
    case "plan.created":
      return `${Array.isArray(data.steps) ? data.steps.length : 0} steps planned`;
    case "step.dispatched": {
      const planned = data.step as { step_id?: string; title?: string } | undefined;
      return `step ${planned?.step_id ?? ""}: ${planned?.title ?? ""}`;
    }
    case "step.started":
      return `${step}, attempt ${String(data.attempt ?? 1)}`;
    case "step.failed":
    case "workflow.failed": {
      const error = data.error as { code?: string; message?: string } | undefined;
      return `${step} ${error?.code ?? ""}: ${error?.message ?? ""}`.trim();
    }
    case "llm.waiting":
      return `${String(data.role ?? "")} waits for ${String(data.model ?? "the model")}`;
    case "input.requested":
      return String(data.question ?? "");
    case "workflow.cancelled":
    case "workflow.cancel_requested":
      return String(data.reason ?? "");
    default:
      return step;
  }
}

export function Timeline(props: { events: LoggedEvent[] }) {
  if (props.events.length === 0) return <p class="state empty">No events yet.</p>;
  return (
    <ol class="timeline" aria-label="Events" tabIndex={0}>
      {props.events.map((event) => (
        <li key={event.id} data-event-id={event.id} data-event-type={event.type}>
          <time dateTime={String(event.data.occurred_at ?? "")}>
            {when(String(event.data.occurred_at ?? ""))}
          </time>
          <span class="event-type">{event.type}</span>
          <span class="event-summary">{summary(event)}</span>
        </li>
      ))}
    </ol>
  );
}
