// Open requests for human input, each with a form to answer it.

import { useState } from "preact/hooks";
import { ApiError, answerInput } from "../api";
import { when } from "../format";
import type { InputRequest } from "../types";

function AnswerForm(props: { apiKey: string; workflowId: string; request: InputRequest; onAnswered: () => void }) {
  const { request } = props;
  const [answer, setAnswer] = useState(request.choices?.[0] ?? "");
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const fieldId = `answer-${request.request_id}`;
  return (
    <form
      class="card input-request"
      data-request-id={request.request_id}
      aria-label={`Answer: ${request.question}`}
      onSubmit={async (event) => {
        event.preventDefault();
        setSending(true);
        setError(null);
        try {
          await answerInput(props.apiKey, props.workflowId, request.request_id, answer);
          props.onAnswered();
        } catch (err) {
          setError(err instanceof ApiError ? err.detail : String(err));
        } finally {
          setSending(false);
        }
      }}
    >
      <p class="question">{request.question}</p>
      <p class="muted">
        {request.kind.replace("_", " ")}
        {request.step_id ? ` for step ${request.step_id}` : ""} · asked {when(request.requested_at)}
        {request.expires_at ? ` · expires ${when(request.expires_at)}` : ""}
      </p>
      {request.choices && request.choices.length > 0 ? (
        <fieldset>
          <legend>Your answer</legend>
          {request.choices.map((choice) => (
            <label key={choice} class="check">
              <input
                type="radio"
                name={fieldId}
                value={choice}
                checked={answer === choice}
                onChange={() => setAnswer(choice)}
              />
              {choice}
            </label>
          ))}
        </fieldset>
      ) : (
        <>
          <label for={fieldId}>Your answer</label>
          <textarea id={fieldId} required rows={3} value={answer} onInput={(e) => setAnswer(e.currentTarget.value)} />
        </>
      )}
      {error && <p class="error" role="alert">{error}</p>}
      <button type="submit" disabled={sending || !answer.trim()}>
        {sending ? "Sending…" : "Send answer"}
      </button>
    </form>
  );
}

export function HumanInput(props: { apiKey: string; workflowId: string; requests: InputRequest[]; onAnswered: () => void }) {
  if (props.requests.length === 0) return null;
  return (
    <section aria-labelledby="input-title" class="needs-input">
      <h2 id="input-title">Waiting for your input</h2>
      {props.requests.map((request) => (
        <AnswerForm key={request.request_id} {...props} request={request} />
      ))}
    </section>
  );
}
