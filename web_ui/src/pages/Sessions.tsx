import { useState } from "react";
import { call, listAll } from "../api/client";
import type { Session } from "../api/types";
import { loadImages } from "../api/images";
import { useLoad, useNow } from "../hooks";
import { Link } from "../router";
import { Empty, ErrorBanner, Notice, Section, StatusBadge } from "../components/ui";
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

export function SessionsPage() {
  const [showAll, setShowAll] = useState(false);
  const now = useNow();
  const list = useLoad(
    () => listAll<Session>("/api/v1/sessions", { all: showAll }, 500),
    [showAll],
    5000,
  );
  const images = useLoad(loadImages, []);
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);
  const active = (list.data ?? []).filter(isActive).map((s) => s.id);
  const live = useStatusEvents(active, list.reload);

  const stop = async (s: Session) => {
    if (!confirm(`Terminate session ${s.name}?`)) return;
    setError(null);
    try {
      await terminate(s.id);
      setMessage(`Session ${s.name} is terminating.`);
      list.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <Section
      title="Sessions"
      actions={
        <>
          <span className="muted">{live ? "● live" : "polling"}</span>
          <label>
            <input type="checkbox" checked={showAll} onChange={(e) => setShowAll(e.target.checked)} />{" "}
            Show finished
          </label>
          <Link to="/launch" className="button primary">
            Launch a session
          </Link>
        </>
      }
    >
      <ErrorBanner error={list.error ?? error} />
      {message ? <Notice>{message}</Notice> : null}
      {list.data && list.data.length === 0 ? (
        <Empty>
          No sessions. <Link to="/launch">Launch one</Link>.
        </Empty>
      ) : null}
      {list.data?.length ? (
        <table data-testid="sessions-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Status</th>
              <th>Image</th>
              <th>Resources</th>
              <th>Age</th>
              <th>Idle time left</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.data.map((s) => (
              <tr key={s.id} data-session={s.name}>
                <td>
                  <Link to={`/sessions/${s.id}`}>{s.name}</Link>
                  <div className="muted">{s.type}</div>
                </td>
                <td>
                  <StatusBadge status={s.status} />
                  {s.status === "pending" ? (
                    <div>
                      <WhyPending verdict={s.pending} />
                    </div>
                  ) : s.status_message ? (
                    <div className="muted">{s.status_message}</div>
                  ) : null}
                </td>
                <td>
                  <code>{s.image}</code>
                </td>
                <td>
                  <ResourceList resources={s.resources} />
                </td>
                <td>
                  <Age s={s} now={now} />
                </td>
                <td>
                  <IdleRemaining s={s} now={now} />
                </td>
                <td className="actions">
                  <AppButtons s={s} images={images.data} />
                  <Link className="button" to={`/sessions/${s.id}`}>
                    Logs
                  </Link>
                  {isActive(s) && s.status !== "terminating" ? (
                    <button type="button" className="danger" onClick={() => void stop(s)}>
                      Terminate
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Section>
  );
}

export async function fetchSession(id: string): Promise<Session> {
  return call<Session>("GET", `/api/v1/sessions/${encodeURIComponent(id)}`);
}
