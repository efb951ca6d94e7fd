import { useState } from "react";
import { call } from "../../api/client";
import type { UsageLine, UsageReport } from "../../api/types";
import { useLoad } from "../../hooks";
import { slotLabel } from "../../format";
import { BarChart } from "../../components/Chart";
import { Empty, ErrorBanner, Field, Section } from "../../components/ui";

function isoDay(d: Date): string {
  return d.toISOString().slice(0, 10);
}

function csv(rows: string[][]): string {
  return rows.map((r) => r.map((c) => (/[",\n]/.test(c) ? `"${c.replace(/"/g, '""')}"` : c)).join(",")).join("\n") + "\n";
}

function gpuHours(line: UsageLine): number {
  return Object.values(line.gpu_hours).reduce((sum, h) => sum + Number(h), 0);
}

export function UsagePage() {
  const [from, setFrom] = useState(isoDay(new Date(Date.now() - 30 * 86400e3)));
  const [to, setTo] = useState(isoDay(new Date(Date.now() + 86400e3)));
  const [groupBy, setGroupBy] = useState<"project" | "user">("project");
  const report = useLoad(
    () =>
      call<UsageReport>("GET", "/api/v1/usage", {
        query: { start: `${from}T00:00:00Z`, end: `${to}T00:00:00Z`, group_by: groupBy },
      }),
    [from, to, groupBy],
  );
  const lines = [...(report.data?.items ?? [])].sort((a, b) => gpuHours(b) - gpuHours(a));
  const gpuSlots = [...new Set(lines.flatMap((l) => Object.keys(l.gpu_hours)))].sort();
  const label = (l: UsageLine) => l.name || l.group_id;
  const bars = lines.map((l) => ({ label: label(l), value: gpuHours(l) }));

  const download = () => {
    const rows = [
      [groupBy, "id", "sessions", "gpu_hours", ...gpuSlots.map((s) => `gpu_hours:${s}`), "cpu_hours", "mem_gib_hours", "from", "to"],
      ...lines.map((l) => [
        label(l),
        l.group_id,
        String(l.sessions),
        gpuHours(l).toFixed(4),
        ...gpuSlots.map((s) => Number(l.gpu_hours[s] ?? 0).toFixed(4)),
        Number(l.cpu_hours).toFixed(4),
        Number(l.mem_gib_hours).toFixed(4),
        from,
        to,
      ]),
    ];
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
        <button type="button" onClick={download} disabled={!lines.length}>
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
      <ErrorBanner error={report.error} />
      {report.data && !lines.length ? <Empty>No sessions ran in this period.</Empty> : null}
      <BarChart title={`GPU-hours per ${groupBy}`} bars={bars} format={(v) => `${v.toFixed(2)} h`} />
      <table data-testid="usage-table">
        <thead>
          <tr>
            <th>{groupBy}</th>
            <th>Sessions</th>
            <th>GPU-hours</th>
            {gpuSlots.map((s) => (
              <th key={s}>{slotLabel(s)}</th>
            ))}
            <th>CPU-hours</th>
            <th>Memory GiB-hours</th>
          </tr>
        </thead>
        <tbody>
          {lines.map((l) => (
            <tr key={l.group_id}>
              <td>{label(l)}</td>
              <td>{l.sessions}</td>
              <td>{gpuHours(l).toFixed(2)}</td>
              {gpuSlots.map((s) => (
                <td key={s}>{Number(l.gpu_hours[s] ?? 0).toFixed(2)}</td>
              ))}
              <td>{Number(l.cpu_hours).toFixed(2)}</td>
              <td>{Number(l.mem_gib_hours).toFixed(2)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  );
}
