import { useEffect, useRef, useState } from "react";
import { call, describeError, streamText } from "../api/client";
import type { HistoryEntry, Session, SessionStatus, Verdict } from "../api/types";
import { loadImages } from "../api/images";
import { useLoad, useNow } from "../hooks";
import { when } from "../format";
import { ErrorBanner, Section, StatusBadge } from "../components/ui";
import {
  Age,
  IdleRemaining,
  ResourceList,
  WhyPending,
  AppButtons,
  isActive,
  terminate,
  useStatusEvents,
} from "./sessionsCommon";

const MAX_LOG_CHARS = 200_000;

export function SessionDetailPage({ id }: { id: string }) {
  const now = useNow();
  const base = `/api/v1/sessions/${encodeURIComponent(id)}`;
  const session = useLoad(() => call<Session>("GET", base), [id], 10000);
  const history = useLoad(
    () => call<{ items: HistoryEntry[] }>("GET", `${base}/history`).then((h) => h.items),
    [id],
  );
  const s = session.data;
  const why = useLoad(
    () => (s?.status === "pending" ? call<Verdict>("GET", `${base}/why`) : Promise.resolve(null)),
    [id, s?.status],
  );
  const live = useStatusEvents(s && isActive(s) ? [s.id] : [], () => {
    session.reload();
    history.reload();
  });
  const images = useLoad(loadImages, []);
  const [error, setError] = useState<unknown>(null);

  return (
    <>
      <ErrorBanner error={session.error ?? error} />
      {s ? (
        <Section
          title={`Session ${s.name}`}
          actions={
            <>
              <span className="muted">{live ? "● live" : ""}</span>
              <AppButtons s={s} images={images.data} />
              {isActive(s) && s.status !== "terminating" ? (
                <button
                  type="button"
                  className="danger"
                  onClick={() => {
                    setError(null);
                    terminate(s.id).then(session.reload, setError);
                  }}
                >
                  Terminate
                </button>
              ) : null}
            </>
          }
        >
          <dl className="facts">
            <dt>Status</dt>
            <dd>
              <StatusBadge status={s.status} /> {s.status_message}
              {s.exit_code != null ? ` (exit code ${s.exit_code})` : ""}
            </dd>
            {s.status === "pending" ? (
              <>
                <dt>Why pending</dt>
                <dd>
                  <WhyPending verdict={why.data ?? s.pending} />
                </dd>
              </>
            ) : null}
            <dt>Type</dt>
            <dd>{s.type}</dd>
            <dt>Image</dt>
            <dd>
              <code>{s.image}</code>
            </dd>
            {s.command ? (
              <>
                <dt>Command</dt>
                <dd>
                  <code>{s.command.join(" ")}</code>
                </dd>
              </>
            ) : null}
            <dt>Resources</dt>
            <dd>
              <ResourceList resources={s.resources} /> × {s.containers} container(s), group{" "}
              {s.resource_group}
            </dd>
            <dt>Age</dt>
            <dd>
              <Age s={s} now={now} /> (created {when(s.created_at)})
            </dd>
            <dt>Idle time left</dt>
            <dd>
              <IdleRemaining s={s} now={now} />
            </dd>
            <dt>Nodes</dt>
            <dd>
              {(s.container_list ?? []).map((c) => `${c.node_id} (${c.state})`).join(", ") || "—"}
            </dd>
          </dl>
        </Section>
      ) : null}
      {s ? <LogViewer base={base} status={s.status} /> : null}
      <Section title="History">
        <ErrorBanner error={history.error} />
        <table>
          <thead>
            <tr>
              <th>When</th>
              <th>Status</th>
              <th>Reason</th>
              <th>Message</th>
            </tr>
          </thead>
          <tbody>
            {history.data?.map((h, i) => (
              <tr key={i}>
                <td>{when(h.at)}</td>
                <td>
                  <StatusBadge status={h.status} />
                </td>
                <td>{h.reason}</td>
                <td>{h.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
    </>
  );
}

const NO_CONTAINER_YET: SessionStatus[] = ["pending", "scheduled", "preparing"];

function LogViewer({ base, status }: { base: string; status: SessionStatus }) {
  const running = status === "running";
  // Until a container exists there is no log to read; start (again) once it runs.
  const waiting = NO_CONTAINER_YET.includes(status);
  const [text, setText] = useState("");
  const [follow, setFollow] = useState(true);
  const [state, setState] = useState<string>("");
  const [attempt, setAttempt] = useState(0);
  const pre = useRef<HTMLPreElement>(null);

  useEffect(() => {
    if (waiting) {
      setState("waiting for the container to start");
      return;
    }
    const controller = new AbortController();
    setText("");
    setState(follow && running ? "following" : "loading");
    streamText(
      `${base}/logs?follow=${follow && running}`,
      (chunk) => setText((t) => (t + chunk).slice(-MAX_LOG_CHARS)),
      controller.signal,
    )
      .then(() => !controller.signal.aborted && setState("end of log"))
      .catch((err) => !controller.signal.aborted && setState(describeError(err)));
    return () => controller.abort();
  }, [base, follow, running, waiting, attempt]);

  useEffect(() => {
    if (pre.current && follow) pre.current.scrollTop = pre.current.scrollHeight;
  }, [text, follow]);

  return (
    <Section
      title="Logs"
      actions={
        <>
          <span className="muted" data-testid="log-state">
            {state}
          </span>
          <label>
            <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} />{" "}
            Follow
          </label>
          <button type="button" onClick={() => setAttempt((a) => a + 1)}>
            Reload
          </button>
        </>
      }
    >
      <pre className="logs" ref={pre} tabIndex={0} aria-label="Session log" data-testid="logs">
        {text || " "}
      </pre>
    </Section>
  );
}
