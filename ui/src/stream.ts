// Follows a workflow's events live and keeps following across dropped connections.
//
// Preferred: an EventSource on a short-lived stream token (POST .../stream-token), which
// resumes by itself with the `id:` of the last event. Where the gateway has no token
// route, the stream is read with fetch() and the Authorization header, and each
// reconnection sends `Last-Event-ID` itself. Either way an event at or before the last
// one delivered is dropped, so a resumed stream never repeats an event.

import { ApiError, streamToken } from "./api";
import { SseParser, compareIds } from "./sse";
import type { LoggedEvent } from "./types";

export type StreamState = "connecting" | "live" | "reconnecting" | "ended" | "failed";

export const TERMINAL_EVENTS = new Set(["workflow.completed", "workflow.failed", "workflow.cancelled"]);

/** The event types an EventSource listens for (it hears only the named ones). */
const KNOWN_EVENTS = [
  "workflow.requested", "plan.created", "step.dispatched", "step.started", "step.completed",
  "step.failed", "synthesis.started", "workflow.completed", "workflow.failed",
  "workflow.cancel_requested", "workflow.cancelled", "budget.exhausted", "llm.waiting",
  "input.requested", "input.answered", "message",
];

const MAX_BACKOFF_MS = 8000;

export interface FollowOptions {
  key: string;
  workflowId: string;
  onEvent: (event: LoggedEvent) => void;
  onState: (state: StreamState, detail?: string) => void;
}

/** Starts following; the returned function stops it. */
export function followEvents(options: FollowOptions): () => void {
  const follower = new Follower(options);
  void follower.run();
  return () => follower.stop();
}

class Follower {
  private lastId: string | null = null;
  private stopped = false;
  private ended = false;
  private abort = new AbortController();
  private source: EventSource | null = null;
  private failures = 0;

  constructor(private readonly options: FollowOptions) {}

  stop(): void {
    this.stopped = true;
    this.abort.abort();
    this.source?.close();
  }

  async run(): Promise<void> {
    this.options.onState("connecting");
    let token = null;
    try {
      token = await streamToken(this.options.key, this.options.workflowId);
    } catch {
      token = null; // the fetch() reader below reports what is wrong
    }
    if (token) this.viaEventSource(this.resumable(token.stream_url));
    else await this.viaFetch();
  }

  /** A new EventSource cannot send Last-Event-ID: the query names where to resume. */
  private resumable(url: string): string {
    if (this.lastId === null) return url;
    const separator = url.includes("?") ? "&" : "?";
    return `${url}${separator}last_event_id=${encodeURIComponent(this.lastId)}`;
  }

  /** Delivers one event unless it was delivered already; true once the stream has ended. */
  private deliver(id: string | null, type: string, data: string): boolean {
    if (id !== null) {
      if (this.lastId !== null && compareIds(id, this.lastId) <= 0) return false;
      this.lastId = id;
    }
    let parsed: Record<string, unknown> = {};
    try {
      parsed = JSON.parse(data) as Record<string, unknown>;
    } catch {
      parsed = { data };
    }
    this.failures = 0;
    this.options.onEvent({ id: id ?? "", type, data: parsed });
    if (TERMINAL_EVENTS.has(type)) {
      this.ended = true;
      this.options.onState("ended");
      this.stop();
    }
    return this.ended;
  }

  private async viaFetch(): Promise<void> {
    const url = `/v1/workflows/${encodeURIComponent(this.options.workflowId)}/events`;
    while (!this.stopped) {
      try {
        const headers: Record<string, string> = {
          Authorization: `Bearer ${this.options.key}`,
          Accept: "text/event-stream",
        };
        if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
        const response = await fetch(url, { headers, signal: this.abort.signal, cache: "no-store" });
        if (response.status === 401 || response.status === 404) {
          const body = (await response.json().catch(() => null)) as { detail?: string } | null;
          throw new ApiError(response.status, body?.detail ?? response.statusText);
        }
        if (!response.ok || !response.body) throw new Error(`event stream answered ${response.status}`);
        this.options.onState("live");
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        const parser = new SseParser();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const message of parser.feed(value)) {
            if (this.deliver(message.id, message.event, message.data)) return;
          }
        }
      } catch (error) {
        if (this.stopped) return;
        if (error instanceof ApiError) {
          this.options.onState("failed", error.detail);
          return;
        }
      }
      if (this.stopped || this.ended) return;
      await this.backoff();
    }
  }

  private viaEventSource(url: string): void {
    const source = new EventSource(url);
    this.source = source;
    source.onopen = () => this.options.onState("live");
    for (const type of KNOWN_EVENTS) {
      source.addEventListener(type, (event) => {
        const message = event as MessageEvent<string>;
        this.deliver(message.lastEventId || null, type, message.data);
      });
    }
    source.onerror = () => {
      if (this.stopped || this.ended) return;
      this.options.onState("reconnecting");
      if (source.readyState === EventSource.CLOSED) {
        // Refused (an expired token, say): a new token and a new source; what it
        // sends again is dropped by its id.
        source.close();
        void this.backoff().then(() => {
          if (!this.stopped) void this.run();
        });
      }
    };
  }

  private async backoff(): Promise<void> {
    this.options.onState("reconnecting");
    this.failures += 1;
    const wait = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(this.failures - 1, 4));
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}
