import { listAll } from "../api/client";
import type { Agent, Session } from "../api/types";
import { useAuth } from "../auth";
import { useLoad } from "../hooks";
import { Link } from "../router";
import { ErrorBanner, Section } from "../components/ui";
import { isActive } from "./sessionsCommon";

function count<T>(path: string) {
  return listAll<T>(path, {}, 1000);
}

export function DashboardPage() {
  const { me, isAdmin } = useAuth();
  const sessions = useLoad(() => count<Session>("/api/v1/sessions"), [], 10000);
  const agents = useLoad(() => (isAdmin ? count<Agent>("/api/v1/agents") : Promise.resolve(null)), [isAdmin], 10000);
  const active = (sessions.data ?? []).filter(isActive);
  const running = active.filter((s) => s.status === "running").length;
  const pending = active.filter((s) => s.status === "pending").length;
  return (
    <div data-testid="dashboard">
      <p>
        Welcome, <strong>{me?.user.full_name || me?.user.username}</strong>. You are a member of{" "}
        {Object.keys(me?.project_roles ?? {}).length} project(s).
      </p>
      <ErrorBanner error={sessions.error ?? agents.error} />
      <div className="tiles">
        <Section title="My sessions">
          <p className="big" data-testid="session-counts">
            {running} running · {pending} pending
          </p>
          <Link to="/sessions">See sessions</Link> · <Link to="/launch">Launch</Link>
        </Section>
        {isAdmin ? (
          <Section title="Cluster">
            {!agents.data ? (
              <p className="muted">Loading nodes…</p>
            ) : (
              <p className="big">
                {agents.data.filter((a) => a.status === "alive").length} of{" "}
                {agents.data.length} node(s) up
              </p>
            )}
            <Link to="/admin/nodes">Nodes</Link> · <Link to="/admin/queue">Queue</Link>
          </Section>
        ) : null}
        <Section title="Data">
          <p>Your folders, uploads and downloads.</p>
          <Link to="/data">Open data</Link>
        </Section>
      </div>
    </div>
  );
}
