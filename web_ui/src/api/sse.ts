// Server-sent events over fetch, so that both cookie and Bearer-token logins work (EventSource
// cannot send an Authorization header).
import { streamText } from "./client";

export interface SseEvent {
  event: string;
  data: string;
  id: string | null;
}

export function parseSse(buffer: string): { events: SseEvent[]; rest: string } {
  const events: SseEvent[] = [];
  const blocks = buffer.replace(/\r\n/g, "\n").split("\n\n");
  const rest = blocks.pop() ?? "";
  for (const block of blocks) {
    let event = "message";
    let id: string | null = null;
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    }
    if (data.length) events.push({ event, data: data.join("\n"), id });
  }
  return { events, rest };
}

export async function followEvents(
  path: string,
  onEvent: (e: SseEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  let buffer = "";
  await streamText(
    path,
    (text) => {
      const parsed = parseSse(buffer + text);
      buffer = parsed.rest;
      parsed.events.forEach(onEvent);
    },
    signal,
  );
}
