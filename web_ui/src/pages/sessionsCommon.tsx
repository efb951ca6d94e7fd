import { useEffect, useState } from "react";
import { call } from "../api/client";
import { followEvents } from "../api/sse";
import { appLinks } from "../api/images";
import type { Image, Session, Verdict } from "../api/types";
import { TERMINAL_STATUSES } from "../api/types";
import { age, duration, slot, slotLabel } from "../format";

export function isActive(s: Session): boolean {
  return !TERMINAL_STATUSES.includes(s.status);
}

export function terminate(id: string): Promise<Session> {
  return call<Session>("DELETE", `/api/v1/sessions/${encodeURIComponent(id)}`);
}

export function ResourceList({ resources }: { resources: Record<string, string> }) {
  return (
    <span className="resources">
      {Object.entries(resources).map(([k, v]) => (
        <span key={k} className="chip" title={slotLabel(k)}>
          {k === "mem" ? slot(k, v) : `${slot(k, v)} ${k === "cpu" ? "CPU" : k}`}
        </span>
      ))}
    </span>
  );
}

export function WhyPending({ verdict }: { verdict: Verdict | null | undefined }) {
  if (!verdict) return <span className="muted">waiting for the scheduler</span>;
  return (
    <span className="why" data-testid="why-pending">
      {verdict.message}
      {verdict.queue_position != null ? (
        <span className="chip">#{verdict.queue_position} in queue</span>
      ) : null}
      <span className="muted"> ({verdict.code})</span>
    </span>
  );
}

export function IdleRemaining({ s, now }: { s: Session; now: number }) {
  if (s.status !== "running") return <span className="muted">—</span>;
  if (s.max_duration_s && s.started_at) {
    const left = s.max_duration_s - (now - new Date(s.started_at).getTime()) / 1000;
    return <span title="the session ends at its maximum duration">{duration(left)} left</span>;
  }
  if (s.idle_timeout_s)
    return (
      <span title="ended after this long without use; any use resets it">
        ≤ {duration(s.idle_timeout_s)} idle
      </span>
    );
  return <span className="muted">no limit</span>;
}

/** The session's web apps (from its image's service ports) as links that open a new tab. */
export function AppButtons({ s, images }: { s: Session; images: Image[] | undefined }) {
  if (s.status !== "running") return null;
  return (
    <>
      {appLinks(s, images).map((a) => (
        <a key={a.service} className="button" href={a.href} target="_blank" rel="noopener">
          {a.label}
        </a>
      ))}
    </>
  );
}

export function Age({ s, now }: { s: Session; now: number }) {
  return <span title={s.created_at}>{age(s.created_at, now)}</span>;
}

/**
 * Follow status events of the given sessions over SSE and call `onChange` on each one. Bounded,
 * because every stream holds one of the browser's few connections to the manager.
 */
export function useStatusEvents(ids: string[], onChange: () => void, max = 3): boolean {
  const key = ids.slice(0, max).join(",");
  const [live, setLive] = useState(false);
  useEffect(() => {
    if (!key) return;
    const controller = new AbortController();
    let open = 0;
    for (const id of key.split(",")) {
      open++;
      setLive(true);
      followEvents(
        `/api/v1/sessions/${encodeURIComponent(id)}/events`,
        () => onChange(),
        controller.signal,
      )
        .catch(() => undefined)
        .finally(() => {
          open--;
          if (open === 0 && !controller.signal.aborted) setLive(false);
          if (!controller.signal.aborted) onChange();
        });
    }
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  return live;
}
