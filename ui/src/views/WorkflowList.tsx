// The tenant's workflows, newest first, with the list endpoint's filters; polled so
// that statuses change on screen as workflows move on.

import { useEffect, useState } from "preact/hooks";
import { type ListFilters, listWorkflows } from "../api";
import { when } from "../format";
import type { WorkflowSummary } from "../types";
import { StatusBadge } from "./StatusBadge";

const STATUSES = [
  "pending", "planning", "running", "awaiting_input", "synthesizing", "completed", "failed",
  "cancelled",
];
const POLL_MS = 2000;
const NO_FILTERS: ListFilters = { status: [], createdAfter: "", createdBefore: "", metadata: "" };

export function WorkflowListPage(props: { apiKey: string }) {
  const [filters, setFilters] = useState<ListFilters>(NO_FILTERS);
  const [draft, setDraft] = useState<ListFilters>(NO_FILTERS);
  const [pages, setPages] = useState(1);
  const [rows, setRows] = useState<WorkflowSummary[] | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let stopped = false;
    let timer = 0;
    const load = async () => {
      try {
        const loaded: WorkflowSummary[] = [];
        let cursor: string | null = null;
        for (let page = 0; page < pages; page++) {
          const body = await listWorkflows(props.apiKey, filters, cursor);
          loaded.push(...body.workflows);
          cursor = body.next_cursor;
          if (!cursor) break;
        }
        if (stopped) return;
        setRows(loaded);
        setMore(cursor !== null);
        setError(null);
      } catch (err) {
        if (!stopped) setError(err instanceof Error ? err.message : String(err));
      }
      if (!stopped) timer = window.setTimeout(load, POLL_MS);
    };
    void load();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [props.apiKey, filters, pages]);

  const toggle = (status: string) =>
    setDraft({
      ...draft,
      status: draft.status.includes(status)
        ? draft.status.filter((s) => s !== status)
        : [...draft.status, status],
    });

  return (
    <section aria-labelledby="list-title">
      <h1 id="list-title">Workflows</h1>
      <form
        class="filters card"
        aria-label="Filters"
        onSubmit={(event) => {
          event.preventDefault();
          setRows(null);
          setPages(1);
          setFilters(draft);
        }}
      >
        <fieldset>
          <legend>Status</legend>
          <div class="checks">
            {STATUSES.map((status) => (
              <label key={status} class="check">
                <input
                  type="checkbox"
                  checked={draft.status.includes(status)}
                  onChange={() => toggle(status)}
                />
                {status.replace("_", " ")}
              </label>
            ))}
          </div>
        </fieldset>
        <div class="fields">
          <label>
            Created after
            <input
              type="datetime-local"
              value={draft.createdAfter}
              onInput={(e) => setDraft({ ...draft, createdAfter: e.currentTarget.value })}
            />
          </label>
          <label>
            Created before
            <input
              type="datetime-local"
              value={draft.createdBefore}
              onInput={(e) => setDraft({ ...draft, createdBefore: e.currentTarget.value })}
            />
          </label>
          <label>
            Metadata (key:value, comma separated)
            <input
              type="text"
              placeholder="team:search"
              value={draft.metadata}
              onInput={(e) => setDraft({ ...draft, metadata: e.currentTarget.value })}
            />
          </label>
        </div>
        <div class="actions">
          <button type="submit">Apply filters</button>
          <button
            type="button"
            class="secondary"
            onClick={() => {
              setDraft(NO_FILTERS);
              setFilters(NO_FILTERS);
              setPages(1);
            }}
          >
            Clear
          </button>
        </div>
      </form>
      {error && (
        <p class="error" role="alert">
          Could not load the workflows: {error}
          {rows && " (showing the last list read)"}
        </p>
      )}
      {rows === null && !error && <p class="state" role="status">Loading workflows…</p>}
      {rows !== null && rows.length === 0 && (
        <p class="state empty" role="status">
          No workflows match. Start one with <code>tributary run "…"</code> or{" "}
          <code>make demo</code>.
        </p>
      )}
      {rows !== null && rows.length > 0 && (
        <div class="table-wrap">
          <table class="workflows">
            <caption class="visually-hidden">Workflows, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Workflow</th>
                <th scope="col">Status</th>
                <th scope="col">Task</th>
                <th scope="col">Created</th>
                <th scope="col">Updated</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row) => (
                <tr key={row.workflow_id} data-workflow-id={row.workflow_id}>
                  <td>
                    <a href={`#/workflows/${row.workflow_id}`} class="mono">{row.workflow_id}</a>
                  </td>
                  <td><StatusBadge status={row.status} /></td>
                  <td class="task">{row.task}</td>
                  <td>{when(row.created_at)}</td>
                  <td>{when(row.updated_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {more && (
        <button type="button" class="secondary" onClick={() => setPages(pages + 1)}>
          Show more
        </button>
      )}
    </section>
  );
}
