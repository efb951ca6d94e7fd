import { useState } from "react";
import { call, type Project, listAll } from "../../api/client";
import type { UsageRow } from "../../api/types";
import { useLoad } from "../../hooks";
import { BarChart } from "../../components/Chart";
import { ErrorBanner, Field, Section } from "../../components/ui";

function isoDay(d: Date): string {
  return d.toISOString().slice(0, 10);
}

function csv(rows: string[][]): string {
  return rows.map((r) => r.map((c) => (/[",\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(",")).join("\n") + "\n";
}

export function UsagePage() {
  const [from, setFrom] = useState(isoDay(new Date(Date.now() - 30 * 86400e3)));
  const [to, setTo] = useState(isoDay(new Date(Date.now() + 86400e3)));
  const [groupBy, setGroupBy] = useState<"project" | "user">("project");
  const projects = useLoad(() => listAll<Project>("/api/v1/projects"), []);
  const usage = useLoad(
    () =>
      call<{ items: UsageRow[] } | UsageRow[]>("GET", "/api/v1/usage", {
        query: { start: `${from}T00:00:00Z`, end: `${to}T00:00:00Z`, group_by: groupBy },
      }).then((r) => (Array.isArray(r) ? r : r.items)),
    [from, to, groupBy],
  );
  const label = (r: UsageRow): string => {
    if (groupBy === "user") return String(r.username ?? r.user ?? r.user_id ?? "?");
    const id = r.project_id ?? "";
    return String(r.project ?? projects.data?.find((p) => p.id === id)?.name ?? id);
  };
  const bars = (usage.data ?? [])
    .map((r) => ({ label: label(r), value: Number(r.gpu_hours ?? 0) }))
    .sort((a, b) => b.value - a.value);

  const download = () => {
    const rows = [[groupBy, "gpu_hours", "from", "to"], ...bars.map((b) => [b.label, b.value.toFixed(4), from, to])];
    const url = URL.createObjectURL(new Blob([csv(rows)], { type: "text/csv" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `berth-usage-${groupBy}-${from}-${to}.csv`;
    a.click();
    URL.revokeObjectURL(url);
  };

  return (
    <Section
      title="GPU-hours"
      actions={
        <button type="button" onClick={download} disabled={!bars.length}>
          Download CSV
        </button>
      }
    >
      <div className="row">
        <Field label="From">{(id) => <input id={id} type="date" value={from} onChange={(e) => setFrom(e.target.value)} />}</Field>
        <Field label="To">{(id) => <input id={id} type="date" value={to} onChange={(e) => setTo(e.target.value)} />}</Field>
        <Field label="Per">
          {(id) => (
            <select id={id} value={groupBy} onChange={(e) => setGroupBy(e.target.value as "project" | "user")}>
              <option value="project">project</option>
              <option value="user">user</option>
            </select>
          )}
        </Field>
      </div>
      <ErrorBanner error={usage.error} />
      <BarChart title={`GPU-hours per ${groupBy}`} bars={bars} format={(v) => `${v.toFixed(2)} h`} />
      <table>
        <thead>
          <tr>
            <th>{groupBy}</th>
            <th>GPU-hours</th>
          </tr>
        </thead>
        <tbody>
          {bars.map((b) => (
            <tr key={b.label}>
              <td>{b.label}</td>
              <td>{b.value.toFixed(2)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  );
}
