import { useEffect, useRef, useState } from "react";
import { call, listAll } from "../../api/client";
import type { Agent } from "../../api/types";
import { useLoad, useNow } from "../../hooks";
import { age, bytes, slot, slotLabel } from "../../format";
import { LineChart, type Series } from "../../components/Chart";
import { ErrorBanner, Meter, Section, StatusBadge } from "../../components/ui";

const HISTORY = 60; // samples kept per series (5 s apart: five minutes)

type Samples = Record<string, Array<[number, number]>>;

// Device plugins report live metrics as string attributes (e.g. utilization_pct "12.0").
function attr(d: Record<string, unknown>, name: string): number | null {
  const v = (d.attributes as Record<string, unknown> | undefined)?.[name] ?? d[name];
  return v === undefined || v === null || v === "" ? null : Number(v);
}
function deviceUtil(d: Record<string, unknown>): number | null {
  return attr(d, "utilization_pct");
}
function deviceMem(d: Record<string, unknown>): number | null {
  return attr(d, "memory_used_bytes");
}

export function NodesPage() {
  const now = useNow(5000);
  const agents = useLoad(() => listAll<Agent>("/api/v1/agents", {}, 500), [], 5000);
  const samples = useRef<Samples>({});
  const [, setVersion] = useState(0);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    if (!agents.data) return;
    const t = Date.now();
    for (const a of agents.data) {
      for (const [k, v] of Object.entries(a.utilisation ?? {})) {
        const key = `${a.id}/${k}`;
        samples.current[key] = [...(samples.current[key] ?? []), [t, Number(v) * 100] as [number, number]].slice(-HISTORY);
      }
      for (const d of a.devices ?? []) {
        const u = deviceUtil(d);
        if (u === null) continue;
        const key = `${a.id}/dev:${String(d.id)}`;
        samples.current[key] = [...(samples.current[key] ?? []), [t, u] as [number, number]].slice(-HISTORY);
      }
    }
    setVersion((v) => v + 1);
  }, [agents.data]);

  const act = async (a: Agent, action: "cordon" | "uncordon" | "drain") => {
    if (action === "drain" && !confirm(`Drain ${a.id}? Its sessions will be moved off or ended.`)) return;
    setError(null);
    try {
      await call("POST", `/api/v1/agents/${encodeURIComponent(a.id)}/${action}`);
      agents.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <>
      <ErrorBanner error={agents.error ?? error} />
      {agents.data?.length === 0 ? <p className="empty">No nodes have registered yet.</p> : null}
      {agents.data?.map((a) => {
        const slotSeries: Series[] = Object.keys(a.utilisation ?? {}).map((k) => ({
          name: slotLabel(k),
          points: samples.current[`${a.id}/${k}`] ?? [],
        }));
        const devSeries: Series[] = (a.devices ?? [])
          .map((d) => ({ name: String(d.id), points: samples.current[`${a.id}/dev:${String(d.id)}`] ?? [] }))
          .filter((s) => s.points.length);
        return (
          <Section
            key={a.id}
            title={`Node ${a.id}`}
            actions={
              <>
                <StatusBadge status={a.status} />
                {a.cordoned ? <StatusBadge status="cordoned" /> : null}
                {a.draining ? <StatusBadge status="draining" /> : null}
                {a.cordoned ? (
                  <button type="button" onClick={() => void act(a, "uncordon")}>
                    Uncordon
                  </button>
                ) : (
                  <button type="button" onClick={() => void act(a, "cordon")}>
                    Cordon
                  </button>
                )}
                <button type="button" className="danger" disabled={a.draining} onClick={() => void act(a, "drain")}>
                  Drain
                </button>
              </>
            }
          >
            <div className="node" data-testid={`node-${a.id}`}>
              <div>
                <dl className="facts">
                  <dt>Group</dt>
                  <dd>{a.resource_group}</dd>
                  <dt>Runtime</dt>
                  <dd>
                    {a.runtime} · {a.architecture} · agent {a.agent_version || "?"}
                  </dd>
                  <dt>Heartbeat</dt>
                  <dd>{age(a.last_heartbeat_at, now)} ago</dd>
                  <dt>Containers</dt>
                  <dd>{a.containers}</dd>
                  <dt>Health</dt>
                  <dd>
                    {Object.keys(a.plugin_errors ?? {}).length
                      ? Object.entries(a.plugin_errors).map(([k, v]) => `${k}: ${String(v)}`).join("; ")
                      : "no plugin errors"}
                    {a.runtime_health?.status
                      ? ` · runtime ${String(a.runtime_health.status)}${a.runtime_health.message ? `: ${String(a.runtime_health.message)}` : ""}`
                      : ""}
                  </dd>
                </dl>
                <h3>Allocated / capacity</h3>
                {Object.entries(a.capacity ?? {}).map(([k, cap]) => {
                  const used = Number(a.allocated?.[k] ?? 0);
                  const limit = Number(cap);
                  const f = (v: number) => (k === "mem" ? bytes(v) : slot(k, v));
                  return (
                    <div key={k} className="meter-row">
                      <span className="meter-label">{slotLabel(k)}</span>
                      <Meter label={`${a.id} ${k}`} used={used} limit={limit} text={`${f(used)} / ${f(limit)}`} />
                    </div>
                  );
                })}
              </div>
              <div>
                <LineChart title={`${a.id} utilisation`} series={slotSeries} yMax={100} yFormat={(v) => `${v}%`} />
              </div>
            </div>
            <h3>Devices</h3>
            {a.devices?.length ? (
              <>
                <table>
                  <thead>
                    <tr>
                      <th>Device</th>
                      <th>Model</th>
                      <th>Slot</th>
                      <th>Health</th>
                      <th>Utilisation</th>
                      <th>Memory</th>
                    </tr>
                  </thead>
                  <tbody>
                    {a.devices.map((d) => {
                      const u = deviceUtil(d);
                      const m = deviceMem(d);
                      const total = Number(d.memory_bytes ?? 0);
                      return (
                        <tr key={String(d.id)}>
                          <td>
                            <code>{String(d.id)}</code>
                          </td>
                          <td>{String(d.model ?? "")}</td>
                          <td>{String(d.slot_name ?? "")}</td>
                          <td>
                            <StatusBadge status={String(d.health ?? "unknown")} />
                          </td>
                          <td>{u === null ? "—" : <Meter label={`${String(d.id)} utilisation`} used={u} limit={100} text={`${u.toFixed(0)}%`} />}</td>
                          <td>
                            {m === null ? (
                              bytes(total)
                            ) : (
                              <Meter label={`${String(d.id)} memory`} used={m} limit={total || null} text={`${bytes(m)} / ${bytes(total)}`} />
                            )}
                          </td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
                {devSeries.length ? (
                  <LineChart title={`${a.id} device utilisation`} series={devSeries} yMax={100} yFormat={(v) => `${v}%`} />
                ) : null}
              </>
            ) : (
              <p className="muted">No accelerators.</p>
            )}
          </Section>
        );
      })}
    </>
  );
}
