// Server-Sent Events read from a fetch() body: the text/event-stream format, fed in
// chunks as they arrive (a field or an event may be split across chunks).

export interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

export class SseParser {
  private buffer = "";
  private id: string | null = null;
  private event = "";
  private data: string[] = [];

  /** The messages completed by this chunk (comments such as pings are dropped). */
  feed(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop() ?? "";
    const done: SseMessage[] = [];
    for (const line of lines) {
      if (line === "") {
        if (this.data.length > 0) {
          done.push({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
        }
        this.id = null;
        this.event = "";
        this.data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") this.data.push(value);
      else if (field === "event") this.event = value;
      else if (field === "id") this.id = value;
    }
    return done;
  }
}

/** Log positions (`<ms>-<seq>`) in order; a later event has a greater id. */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am !== bm ? am - bm : as - bs;
}
