// A step's recorded calls, by attempt and iteration: the messages sent, what the model
// answered (text or tool calls), the tool results, tokens, the model that served each
// call, every HTTP try with its error.

import type { LLMCall, RecordedCall, ToolCall } from "../types";

function text(value: unknown): string {
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

function LlmCall(props: { call: LLMCall }) {
  const { call } = props;
  const response = call.body?.response ?? null;
  const served = response ? `${response.model}${response.deployment ? ` (${response.deployment})` : ""}` : "no answer";
  const retries = Math.max(0, call.tries.length - 1);
  return (
    <li class="call llm" data-call-type="llm">
      <div class="call-head">
        <strong>LLM call {call.sequence}</strong>
        <span>{call.role}</span>
        <span>model: <span class="mono">{served}</span></span>
        {response && <span>{response.usage.total_tokens} tokens ({response.usage.prompt_tokens} in, {response.usage.completion_tokens} out)</span>}
        <span>{call.duration_ms} ms</span>
        {retries > 0 && <span class="warn">{retries} {retries === 1 ? "retry" : "retries"}</span>}
      </div>
      {call.error && <p class="error">{call.error.code}: {call.error.message}</p>}
      {call.tries.some((t) => t.error) && (
        <ul class="tries">
          {call.tries.map((t, n) => (
            <li key={n}>
              try {n + 1}: <span class="mono">{t.model}</span> on {t.deployment}, {t.duration_ms} ms
              {t.error ? ` — ${t.error.code}: ${t.error.message}` : " — ok"}
            </li>
          ))}
        </ul>
      )}
      {call.body && (
        <details>
          <summary>Messages sent ({call.body.request.messages.length})</summary>
          <ol class="messages">
            {call.body.request.messages.map((m, n) => (
              <li key={n}>
                <span class="role">{String(m.role ?? "")}</span>
                <pre>{text(m.content ?? m.tool_calls ?? "")}</pre>
              </li>
            ))}
          </ol>
        </details>
      )}
      {response?.content && (
        <div class="answer-text">
          <span class="role">answer</span>
          <pre>{response.content}</pre>
        </div>
      )}
      {response && response.tool_calls.length > 0 && (
        <ul class="tool-requests">
          {response.tool_calls.map((t) => (
            <li key={t.id}>
              asks for <span class="mono">{t.name}</span>(<span class="mono">{t.arguments}</span>)
            </li>
          ))}
        </ul>
      )}
    </li>
  );
}

function ToolCallItem(props: { call: ToolCall }) {
  const { call } = props;
  return (
    <li class={`call tool${call.failed ? " failed" : ""}`} data-call-type="tool">
      <div class="call-head">
        <strong>Tool <span class="mono">{call.name}</span></strong>
        <span>{call.outcome}</span>
        <span>{call.duration_ms} ms</span>
        {call.failed && <span class="warn">failed</span>}
      </div>
      {call.body && (
        <>
          <div><span class="role">arguments</span><pre>{call.body.arguments}</pre></div>
          <div><span class="role">result</span><pre>{call.body.result}</pre></div>
        </>
      )}
    </li>
  );
}

export function CallItems(props: { calls: RecordedCall[] }) {
  return (
    <ul class="calls">
      {props.calls.map((call) =>
        call.type === "llm.called" ? (
          <LlmCall key={call.event_id} call={call} />
        ) : (
          <ToolCallItem key={call.event_id} call={call} />
        ),
      )}
    </ul>
  );
}

/** Calls grouped as "attempt a, iteration i" in the order they were made. */
export function byIteration(calls: RecordedCall[]): { label: string; calls: RecordedCall[] }[] {
  const groups = new Map<string, RecordedCall[]>();
  for (const call of calls) {
    const label =
      `attempt ${call.attempt}` + (call.iteration !== null ? `, iteration ${call.iteration}` : "");
    const list = groups.get(label) ?? [];
    list.push(call);
    groups.set(label, list);
  }
  return [...groups].map(([label, grouped]) => ({ label, calls: grouped }));
}
