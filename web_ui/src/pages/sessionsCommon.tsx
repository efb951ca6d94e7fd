import { useEffect, useState } from "react";
import { call } from "../api/client";
import { followEvents } from "../api/sse";
import type { Session, Verdict } from "../api/types";
import { TERMINAL_STATUSES } from "../api/types";
import { age, duration, slot, slotLabel } from "../format";

export function isActive(s: Session): boolean {
  return !TERMINAL_STATUSES.includes(s.status);
}

export function terminate(id: string): Promise<Session> {
  return call<Session>("DELETE", `/api/v1/sessions/${encodeURIComponent(id)}`);
}

/** Web services a session offers; JupyterLab for interactive sessions unless told otherwise. */
export function servicesOf(s: Session): string[] {
  const names = new Set<string>();
  for (const svc of s.services ?? []) names.add(typeof svc === "string" ? svc : svc.name);
  for (const c of s.container_list ?? [])
    for (const p of c.ports ?? []) {
      const n = (p.service ?? p.name) as string | undefined;
      if (n) names.add(n);
    }
  if (!names.size && s.type === "interactive") names.add("jupyterlab");
  return [...names];
}

export function appUrl(s: Session, service: string): string {
  return `/apps/${encodeURIComponent(s.id)}/${encodeURIComponent(service)}/`;
}

export function ResourceList({ resources }: { resources: Record<string, string | number> }) {
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
  if (s.idle_deadline_at) {
    const left = (new Date(s.idle_deadline_at).getTime() - now) / 1000;
    return <span>{duration(left)} left</span>;
  }
  if (s.idle_timeout_s) {
    const since = s.last_activity_at ?? s.started_at;
    if (s.last_activity_at)
      return (
        <span>{duration(s.idle_timeout_s - (now - new Date(since!).getTime()) / 1000)} left</span>
      );
    return <span title="the node reports activity; the limit resets on use">≤ {duration(s.idle_timeout_s)}</span>;
  }
  return <span className="muted">no idle limit</span>;
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
