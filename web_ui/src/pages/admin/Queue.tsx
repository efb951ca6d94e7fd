import { listAll } from "../../api/client";
import type { Session } from "../../api/types";
import { useLoad, useNow } from "../../hooks";
import { Link } from "../../router";
import { Empty, ErrorBanner, Section } from "../../components/ui";
import { Age, ResourceList, WhyPending } from "../sessionsCommon";

export function QueuePage() {
  const now = useNow();
  const pending = useLoad(() => listAll<Session>("/api/v1/sessions", { status: "pending" }, 1000), [], 5000);
  const rows = [...(pending.data ?? [])].sort(
    (a, b) => (a.pending?.queue_position ?? 1e9) - (b.pending?.queue_position ?? 1e9),
  );
  return (
    <Section title="Pending sessions across the cluster">
      <ErrorBanner error={pending.error} />
      {pending.data && !rows.length ? <Empty>Nothing is waiting.</Empty> : null}
      {rows.length ? (
        <table data-testid="queue-table">
          <thead>
            <tr>
              <th>#</th>
              <th>Session</th>
              <th>Resource group</th>
              <th>Resources</th>
              <th>Priority</th>
              <th>Waiting</th>
              <th>Why pending</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((s) => (
              <tr key={s.id}>
                <td>{s.pending?.queue_position ?? "—"}</td>
                <td>
                  <Link to={`/sessions/${s.id}`}>{s.name}</Link>
                </td>
                <td>{s.resource_group}</td>
                <td>
                  <ResourceList resources={s.resources} />
                </td>
                <td>{s.priority}</td>
                <td>
                  <Age s={s} now={now} />
                </td>
                <td>
                  <WhyPending verdict={s.pending} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Section>
  );
}
