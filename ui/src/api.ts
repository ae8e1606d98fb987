// The gateway's API, called with the signed-in key; errors carry the API's `detail`.

import type { CallList, Workflow, WorkflowList } from "./types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`${status}: ${detail}`);
  }
}

/** Called when the gateway refuses the key (401), so the app can ask for another. */
let onUnauthorized: () => void = () => {};
export function whenUnauthorized(callback: () => void): void {
  onUnauthorized = callback;
}

function describe(body: unknown): string {
  const detail = (body as { detail?: unknown } | null)?.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d: { msg?: string }) => d.msg ?? JSON.stringify(d)).join("; ");
  }
  return "unexpected answer from the gateway";
}

export async function request<T>(key: string, path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${key}`);
  if (init.body !== undefined) headers.set("Content-Type", "application/json");
  const response = await fetch(path, { ...init, headers });
  if (response.status === 401) onUnauthorized();
  if (!response.ok) {
    const body: unknown = await response.json().catch(() => null);
    throw new ApiError(response.status, describe(body));
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export interface ListFilters {
  status: string[];
  createdAfter: string;
  createdBefore: string;
  metadata: string;
}

export function listWorkflows(
  key: string,
  filters: ListFilters,
  cursor: string | null,
): Promise<WorkflowList> {
  const params = new URLSearchParams({ limit: "25" });
  for (const status of filters.status) params.append("status", status);
  if (filters.createdAfter) params.set("created_after", new Date(filters.createdAfter).toISOString());
  if (filters.createdBefore) params.set("created_before", new Date(filters.createdBefore).toISOString());
  for (const pair of filters.metadata.split(",").map((p) => p.trim()).filter(Boolean)) {
    params.append("metadata", pair);
  }
  if (cursor) params.set("cursor", cursor);
  return request(key, `/v1/workflows?${params}`);
}

const path = (id: string) => `/v1/workflows/${encodeURIComponent(id)}`;

export const getWorkflow = (key: string, id: string): Promise<Workflow> => request(key, path(id));

export const cancelWorkflow = (key: string, id: string): Promise<unknown> =>
  request(key, `${path(id)}/cancel`, { method: "POST", body: JSON.stringify({}) });

export const answerInput = (key: string, id: string, requestId: string, answer: string) =>
  request<unknown>(key, `${path(id)}/input`, {
    method: "POST",
    body: JSON.stringify({ request_id: requestId, answer }),
  });

/** Every recorded call of the workflow, page after page. */
export async function allCalls(key: string, id: string): Promise<CallList["calls"]> {
  const calls: CallList["calls"] = [];
  let after = "0";
  for (let page = 0; page < 50; page++) {
    const body = await request<CallList>(key, `${path(id)}/calls?after=${after}&limit=500`);
    calls.push(...body.calls);
    if (!body.next_after || body.calls.length === 0) break;
    after = body.next_after;
  }
  return calls;
}

export interface StreamToken {
  token: string;
  expires_at: string;
  stream_url: string;
}

/** A short-lived token for EventSource, or null where the gateway has no such route. */
export async function streamToken(key: string, id: string): Promise<StreamToken | null> {
  try {
    return await request<StreamToken>(key, `${path(id)}/stream-token`, { method: "POST" });
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 405)) return null;
    throw error;
  }
}
