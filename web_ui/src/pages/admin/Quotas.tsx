import { useEffect, useMemo, useState, type FormEvent } from "react";
import { call, listAll, type Domain, type Project, type ResourceGroup, type User } from "../../api/client";
import { QUOTA_KINDS, type Quota, type QuotaKind, type QuotaSet } from "../../api/types";
import { useAuth } from "../../auth";
import { useLoad } from "../../hooks";
import { duration, parseBytes, slot, slotLabel, when } from "../../format";
import { Empty, ErrorBanner, Field, Meter, Notice, Section } from "../../components/ui";
import { scopeWords, type Names } from "../quotaWords";

const KIND_WORDS: Record<QuotaKind, string> = {
  domain: "Domain",
  project: "Project",
  user: "User",
  user_in_project: "User in a project",
};

interface Target {
  kind: QuotaKind;
  id: string;
  projectId: string;
}

function parseScope(scope: string): Target {
  const [kind, rest = ""] = scope.split(":");
  if (kind === "user_in_project") {
    const [p, u] = rest.split("/");
    return { kind, id: u, projectId: p };
  }
  return { kind: kind as QuotaKind, id: rest, projectId: "" };
}

function quotaPath(t: Target): string {
  const base = `/api/v1/quotas/${t.kind}/${encodeURIComponent(t.id)}`;
  return t.kind === "user_in_project" ? `${base}?project_id=${encodeURIComponent(t.projectId)}` : base;
}

function amount(name: string, v: string | undefined): number {
  return v === undefined ? 0 : name === "mem" ? parseBytes(v) : Number(v);
}

function memText(n: number): string {
  if (n > 0 && n % 1024 ** 3 === 0) return `${n / 1024 ** 3}g`;
  if (n > 0 && n % 1024 ** 2 === 0) return `${n / 1024 ** 2}m`;
  return String(n);
}

function optInt(v: string): number | null {
  return v.trim() === "" ? null : Number(v);
}

interface FormState {
  slots: Array<{ name: string; value: string }>;
  maxConcurrent: string;
  maxPending: string;
  lifetime: string;
  idle: string;
  groups: string[] | null;
}

function formFrom(q: Quota | null): FormState {
  const slots = Object.entries(q?.slots ?? {}).map(([name, value]) => ({
    name,
    value: name === "mem" ? memText(Number(value)) : String(Number(value)),
  }));
  for (const name of ["cuda.device", "cpu", "mem"])
    if (!slots.some((s) => s.name === name)) slots.push({ name, value: "" });
  const s = (v: number | null | undefined) => (v == null ? "" : String(v));
  return {
    slots,
    maxConcurrent: s(q?.max_concurrent_sessions),
    maxPending: s(q?.max_pending_sessions),
    lifetime: s(q?.max_session_lifetime_s),
    idle: s(q?.default_idle_timeout_s),
    groups: q?.allowed_resource_groups ?? null,
  };
}

export function QuotasPage() {
  const { me, isSuperadmin } = useAuth();
  const quotas = useLoad(async () => (await call<{ items: Quota[] }>("GET", "/api/v1/quotas")).items, [], 10000);
  const projects = useLoad(() => listAll<Project>("/api/v1/projects"), []);
  const users = useLoad(() => listAll<User>("/api/v1/users"), []);
  const domains = useLoad(
    () => (isSuperadmin ? listAll<Domain>("/api/v1/domains") : Promise.resolve([])),
    [isSuperadmin],
  );
  const groups = useLoad(() => listAll<ResourceGroup>("/api/v1/resource-groups"), []);
  const names: Names = useMemo(
    () => ({
      projects: new Map((projects.data ?? []).map((p) => [p.id, p.name])),
      users: new Map((users.data ?? []).map((u) => [u.id, u.username])),
    }),
    [projects.data, users.data],
  );
  const domainIds = useMemo(() => {
    const ids = new Map<string, string>((domains.data ?? []).map((d) => [d.id, d.name]));
    if (me && !ids.has(me.user.domain_id)) ids.set(me.user.domain_id, "your domain");
    return ids;
  }, [domains.data, me]);

  const [target, setTarget] = useState<Target>({ kind: "project", id: "", projectId: "" });
  const [form, setForm] = useState<FormState>(formFrom(null));
  const [loaded, setLoaded] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);
  const ready = target.id !== "" && (target.kind !== "user_in_project" || target.projectId !== "");

  // Choosing a target loads its current limits into the form.
  useEffect(() => {
    setLoaded(null);
    if (!ready) return;
    let alive = true;
    call<Quota>("GET", quotaPath(target)).then(
      (q) => {
        if (!alive) return;
        setForm(formFrom(q));
        setLoaded(q.scope);
      },
      (err) => alive && setError(err),
    );
    return () => {
      alive = false;
    };
  }, [ready, target]);

  const targetScope =
    target.kind === "user_in_project" ? `user_in_project:${target.projectId}/${target.id}` : `${target.kind}:${target.id}`;

  const save = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setMessage(null);
    const body: QuotaSet = {
      slots: Object.fromEntries(
        form.slots.filter((s) => s.name.trim() && s.value.trim()).map((s) => [s.name.trim(), s.value.trim()]),
      ),
      max_concurrent_sessions: optInt(form.maxConcurrent),
      max_pending_sessions: optInt(form.maxPending),
      max_session_lifetime_s: optInt(form.lifetime),
      default_idle_timeout_s: optInt(form.idle),
      allowed_resource_groups: form.groups,
    };
    try {
      await call("PUT", quotaPath(target), { body });
      setMessage(`Saved the quota of ${scopeWords(targetScope, names)}.`);
      quotas.reload();
    } catch (err) {
      setError(err);
    }
  };

  const remove = async (q: Quota) => {
    if (!confirm(`Remove every limit of ${scopeWords(q.scope, names)}?`)) return;
    setError(null);
    setMessage(null);
    try {
      await call("DELETE", quotaPath(parseScope(q.scope)));
      setMessage(`Removed the quota of ${scopeWords(q.scope, names)}.`);
      quotas.reload();
    } catch (err) {
      setError(err);
    }
  };

  const setSlot = (i: number, patch: Partial<{ name: string; value: string }>) =>
    setForm({ ...form, slots: form.slots.map((s, j) => (j === i ? { ...s, ...patch } : s)) });

  return (
    <>
      <Section title="Set limits">
        <form onSubmit={save} aria-label="Set a quota">
          <div className="grid3">
            <Field label="Scope">
              {(id) => (
                <select
                  id={id}
                  value={target.kind}
                  onChange={(e) => setTarget({ kind: e.target.value as QuotaKind, id: "", projectId: "" })}
                >
                  {QUOTA_KINDS.map((k) => (
                    <option key={k} value={k}>
                      {KIND_WORDS[k]}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            {target.kind === "user_in_project" ? (
              <Field label="In project">
                {(id) => (
                  <select
                    id={id}
                    required
                    value={target.projectId}
                    onChange={(e) => setTarget({ ...target, projectId: e.target.value })}
                  >
                    <option value="">Choose…</option>
                    {projects.data?.map((p) => (
                      <option key={p.id} value={p.id}>
                        {p.name}
                      </option>
                    ))}
                  </select>
                )}
              </Field>
            ) : null}
            <Field label={target.kind === "user_in_project" ? "User" : KIND_WORDS[target.kind]}>
              {(id) => (
                <select id={id} required value={target.id} onChange={(e) => setTarget({ ...target, id: e.target.value })}>
                  <option value="">Choose…</option>
                  {target.kind === "domain"
                    ? [...domainIds].map(([d, n]) => (
                        <option key={d} value={d}>
                          {n}
                        </option>
                      ))
                    : target.kind === "project"
                      ? projects.data?.map((p) => (
                          <option key={p.id} value={p.id}>
                            {p.name}
                          </option>
                        ))
                      : users.data?.map((u) => (
                          <option key={u.id} value={u.id}>
                            {u.username}
                          </option>
                        ))}
                </select>
              )}
            </Field>
          </div>
          <p className="muted" data-testid="quota-editing" aria-live="polite">
            {loaded ? `Editing the quota of ${scopeWords(loaded, names)}.` : "Choose whose quota to edit."}
          </p>
          <fieldset disabled={!loaded}>
            <legend>Slot totals (empty: no limit; 0 forbids the slot; memory as 64g or 512m)</legend>
            <div className="grid3">
              {form.slots.map((s, i) => (
                <div key={i} className="row">
                  <Field label={`Slot ${i + 1} name`}>
                    {(id) => <input id={id} value={s.name} onChange={(e) => setSlot(i, { name: e.target.value })} />}
                  </Field>
                  <Field label={`${s.name ? slotLabel(s.name) : `Slot ${i + 1}`} limit`}>
                    {(id) => <input id={id} value={s.value} onChange={(e) => setSlot(i, { value: e.target.value })} />}
                  </Field>
                </div>
              ))}
            </div>
            <button type="button" onClick={() => setForm({ ...form, slots: [...form.slots, { name: "", value: "" }] })}>
              Add a slot
            </button>
          </fieldset>
          <fieldset disabled={!loaded}>
            <legend>Sessions</legend>
            <div className="grid3">
              <Field label="Max concurrent sessions">
                {(id) => <input id={id} type="number" min={0} value={form.maxConcurrent} onChange={(e) => setForm({ ...form, maxConcurrent: e.target.value })} />}
              </Field>
              <Field label="Max pending sessions">
                {(id) => <input id={id} type="number" min={0} value={form.maxPending} onChange={(e) => setForm({ ...form, maxPending: e.target.value })} />}
              </Field>
              <Field label="Max session lifetime (s)" hint="At least 60.">
                {(id) => <input id={id} type="number" min={60} value={form.lifetime} onChange={(e) => setForm({ ...form, lifetime: e.target.value })} />}
              </Field>
              <Field label="Default idle timeout (s)" hint="At least 60.">
                {(id) => <input id={id} type="number" min={60} value={form.idle} onChange={(e) => setForm({ ...form, idle: e.target.value })} />}
              </Field>
            </div>
            <fieldset className="row">
              <legend>Allowed resource groups</legend>
              <label>
                <input type="checkbox" checked={form.groups === null} onChange={(e) => setForm({ ...form, groups: e.target.checked ? null : [] })} /> any
              </label>
              {groups.data?.map((g) => (
                <label key={g.id}>
                  <input
                    type="checkbox"
                    disabled={form.groups === null}
                    checked={form.groups?.includes(g.name) ?? false}
                    onChange={(e) =>
                      setForm({
                        ...form,
                        groups: e.target.checked
                          ? [...(form.groups ?? []), g.name]
                          : (form.groups ?? []).filter((n) => n !== g.name),
                      })
                    }
                  />{" "}
                  {g.name}
                </label>
              ))}
            </fieldset>
          </fieldset>
          <button type="submit" className="primary" disabled={!loaded}>
            Save quota
          </button>
        </form>
        {message ? <Notice>{message}</Notice> : null}
        <ErrorBanner error={error} />
      </Section>
      <Section title="Limits and current usage">
        <ErrorBanner error={quotas.error} />
        {quotas.data?.length === 0 ? <Empty>No quotas are set: every scope is unlimited.</Empty> : null}
        {quotas.data?.length ? (
          <table data-testid="quotas-table">
            <thead>
              <tr>
                <th>Scope</th>
                <th>Usage against each limit</th>
                <th>Sessions</th>
                <th>Other limits</th>
                <th>Actions</th>
              </tr>
            </thead>
            <tbody>
              {quotas.data.map((q) => (
                <tr key={q.scope} data-scope={q.scope}>
                  <td>
                    {scopeWords(q.scope, names)}
                    <div className="muted">updated {when(q.updated_at)}</div>
                  </td>
                  <td>
                    {Object.entries(q.slots ?? {}).map(([k, lim]) => {
                      const used = amount(k, q.used?.[k]);
                      const l = amount(k, lim);
                      return (
                        <div className="meter-row" key={k}>
                          <span className="meter-label">{slotLabel(k)}</span>
                          <Meter label={`${scopeWords(q.scope, names)} ${k}`} used={used} limit={l} text={`${slot(k, used)} / ${slot(k, l)}`} />
                        </div>
                      );
                    })}
                    {!Object.keys(q.slots ?? {}).length ? <span className="muted">no slot limits</span> : null}
                  </td>
                  <td>
                    {q.sessions ?? 0}
                    {q.max_concurrent_sessions != null ? ` / ${q.max_concurrent_sessions}` : ""}
                    {q.max_pending_sessions != null ? <div className="muted">≤ {q.max_pending_sessions} pending</div> : null}
                  </td>
                  <td>
                    {q.max_session_lifetime_s != null ? <div>lifetime ≤ {duration(q.max_session_lifetime_s)}</div> : null}
                    {q.default_idle_timeout_s != null ? <div>idle timeout {duration(q.default_idle_timeout_s)}</div> : null}
                    {q.allowed_resource_groups ? <div>groups: {q.allowed_resource_groups.join(", ") || "none"}</div> : null}
                  </td>
                  <td className="actions">
                    <button type="button" onClick={() => setTarget(parseScope(q.scope))}>
                      Edit
                    </button>
                    <button type="button" className="danger" onClick={() => void remove(q)}>
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Section>
    </>
  );
}
