import { useState, type FormEvent } from "react";
import { call, listAll, type Project, type User } from "../../api/client";
import type { Quota } from "../../api/types";
import { useLoad } from "../../hooks";
import { parseBytes, slot, slotLabel } from "../../format";
import { ErrorBanner, Field, Meter, Notice, Section } from "../../components/ui";

function amount(name: string, v: string | number | undefined): number {
  return v === undefined ? 0 : name === "mem" ? parseBytes(v) : Number(v);
}

export function QuotasPage() {
  const quotas = useLoad(() => listAll<Quota>("/api/v1/quotas", {}, 1000), [], 10000);
  const projects = useLoad(() => listAll<Project>("/api/v1/projects"), []);
  const users = useLoad(() => listAll<User>("/api/v1/users"), []);
  const [scope, setScope] = useState("");
  const [slotName, setSlotName] = useState("cuda.device");
  const [limit, setLimit] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);

  const scopeName = (q: Quota | string) => {
    const s = typeof q === "string" ? q : q.scope;
    const [kind, id] = s.split(":");
    if (kind === "project") return `project ${projects.data?.find((p) => p.id === id)?.name ?? id}`;
    if (kind === "user") return `user ${users.data?.find((u) => u.id === id)?.username ?? id}`;
    return s.replace(":", " ");
  };

  const save = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setMessage(null);
    const existing = quotas.data?.find((q) => q.scope === scope);
    const slots: Record<string, string> = { ...(existing?.slots as Record<string, string>) };
    if (limit.trim() === "") delete slots[slotName];
    else slots[slotName] = limit.trim();
    try {
      await call("PUT", `/api/v1/quotas/${encodeURIComponent(scope)}`, { body: { slots } });
      setMessage(`Quota of ${scopeName(scope)} saved: ${slotLabel(slotName)} = ${limit || "unlimited"}.`);
      quotas.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <>
      <Section title="Set a limit">
        <form className="grid3" onSubmit={save} aria-label="Set a quota limit">
          <Field label="Scope">
            {(id) => (
              <select id={id} required value={scope} onChange={(e) => setScope(e.target.value)}>
                <option value="">Choose…</option>
                {projects.data?.map((p) => (
                  <option key={p.id} value={`project:${p.id}`}>
                    project {p.name}
                  </option>
                ))}
                {users.data?.map((u) => (
                  <option key={u.id} value={`user:${u.id}`}>
                    user {u.username}
                  </option>
                ))}
                {[...new Set(projects.data?.map((p) => p.domain_id))].map((d) => (
                  <option key={d} value={`domain:${d}`}>
                    domain {d.slice(0, 8)}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field label="Slot" hint="cpu, mem, or an accelerator slot such as cuda.device">
            {(id) => <input id={id} required value={slotName} onChange={(e) => setSlotName(e.target.value)} />}
          </Field>
          <Field label="Limit" hint="Empty removes the limit. Memory takes 64g, 512m…">
            {(id) => <input id={id} value={limit} onChange={(e) => setLimit(e.target.value)} />}
          </Field>
          <div className="field">
            <button type="submit" className="primary">
              Save limit
            </button>
          </div>
        </form>
        {message ? <Notice>{message}</Notice> : null}
        <ErrorBanner error={error} />
      </Section>
      <Section title="Limits and current usage">
        <ErrorBanner error={quotas.error} />
        <table data-testid="quotas-table">
          <thead>
            <tr>
              <th>Scope</th>
              <th>Usage against each limit</th>
              <th>Sessions</th>
            </tr>
          </thead>
          <tbody>
            {quotas.data?.map((q) => (
              <tr key={q.scope}>
                <td>{scopeName(q)}</td>
                <td>
                  {Object.entries(q.slots ?? {}).map(([k, lim]) => {
                    const used = amount(k, q.usage?.[k]);
                    const l = amount(k, lim);
                    return (
                      <div className="meter-row" key={k}>
                        <span className="meter-label">{slotLabel(k)}</span>
                        <Meter label={`${q.scope} ${k}`} used={used} limit={l} text={`${slot(k, used)} / ${slot(k, l)}`} />
                      </div>
                    );
                  })}
                  {!Object.keys(q.slots ?? {}).length ? <span className="muted">no slot limits</span> : null}
                </td>
                <td>
                  {q.sessions ?? 0}
                  {q.max_concurrent_sessions != null ? ` / ${q.max_concurrent_sessions}` : ""}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
    </>
  );
}
