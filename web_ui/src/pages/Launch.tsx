import { useEffect, useMemo, useState, type FormEvent } from "react";
import { call, listAll, type Project, type ResourceGroup } from "../api/client";
import { loadImages } from "../api/images";
import type { Image, Session, VFolder } from "../api/types";
import { useAuth } from "../auth";
import { useLoad } from "../hooks";
import { bytes, parseBytes, slot, slotLabel } from "../format";
import { navigate } from "../router";
import { ErrorBanner, Field, Notice, Section } from "../components/ui";
import { loadLimits } from "./launchLimits";
import { explainLaunchError, scopeWords, type Names } from "./quotaWords";

const GIB = 1024 ** 3;
const PRESETS: Array<{ name: string; cpu: number; memGiB: number; accel: number }> = [
  { name: "Small", cpu: 1, memGiB: 2, accel: 0 },
  { name: "Medium", cpu: 2, memGiB: 8, accel: 0 },
  { name: "1 GPU", cpu: 1, memGiB: 4, accel: 1 },
  { name: "2 GPUs", cpu: 2, memGiB: 8, accel: 2 },
];
const DEFAULT_MAX: Record<string, number> = { cpu: 64, mem: 256 * GIB };
const OTHER = "__other__";

function minOf(img: Image | undefined, k: string): number {
  const v = img?.min_resources?.[k];
  if (v === undefined) return 0;
  return k === "mem" ? parseBytes(v) : Number(v);
}

function ImageFacts({ img }: { img: Image }) {
  return (
    <dl className="facts" data-testid="image-facts">
      <dt>Web apps</dt>
      <dd>
        {img.service_ports.length
          ? img.service_ports
              .map((p) => `${p.name}${p.name === img.default_app ? " (default)" : ""}: ${p.protocol}/${p.container_port}`)
              .join(", ")
          : "none (batch or terminal use)"}
      </dd>
      <dt>Accelerators</dt>
      <dd>{img.accelerators.length ? img.accelerators.join(", ") : "any (not declared)"}</dd>
      <dt>Needs at least</dt>
      <dd>
        {Object.keys(img.min_resources).length
          ? Object.entries(img.min_resources)
              .map(([k, v]) => `${slot(k, v)} ${k === "mem" ? "memory" : k === "cpu" ? "CPU" : k}`)
              .join(", ")
          : "nothing declared"}
      </dd>
      <dt>On nodes</dt>
      <dd>{img.nodes.map((n) => `${n.node_id} (${n.resource_group}, ${n.architecture})`).join(", ") || "none live"}</dd>
      {img.label_problems.length ? (
        <>
          <dt>Label problems</dt>
          <dd>{img.label_problems.join("; ")}</dd>
        </>
      ) : null}
    </dl>
  );
}

export function LaunchPage() {
  const { me } = useAuth();
  const projects = useLoad(() => listAll<Project>("/api/v1/projects"), []);
  const groups = useLoad(() => listAll<ResourceGroup>("/api/v1/resource-groups"), []);
  const images = useLoad(loadImages, []);
  const folders = useLoad(() => listAll<VFolder>("/api/v1/vfolders", {}, 500), []);
  const [projectId, setProjectId] = useState<string>("");

  const memberProjects = useMemo(() => {
    const roles = me?.project_roles ?? {};
    const all = projects.data ?? [];
    const mine = all.filter((p) => p.id in roles);
    return mine.length ? mine : all;
  }, [projects.data, me]);
  const names: Names = useMemo(
    () => ({
      projects: new Map((projects.data ?? []).map((p) => [p.id, p.name])),
      users: new Map(me ? [[me.user.id, me.user.username]] : []),
      me: me?.user.id,
    }),
    [projects.data, me],
  );

  useEffect(() => {
    if (!projectId && memberProjects.length) setProjectId(memberProjects[0].id);
  }, [memberProjects, projectId]);
  const limits = useLoad(
    () => (projectId ? loadLimits(projectId) : Promise.resolve(null)),
    [projectId],
  );

  const allowedGroups = (groups.data ?? []).filter(
    (g) => !g.project_ids?.length || g.project_ids.includes(projectId),
  );
  const [group, setGroup] = useState("default");
  useEffect(() => {
    if (allowedGroups.length && !allowedGroups.some((g) => g.name === group))
      setGroup(allowedGroups[0].name);
  }, [allowedGroups, group]);

  const [name, setName] = useState("");
  const [choice, setChoice] = useState("");
  const [typed, setTyped] = useState("");
  const [type, setType] = useState<"interactive" | "batch">("interactive");
  const [command, setCommand] = useState("");
  const [amounts, setAmounts] = useState<Record<string, number>>({ cpu: 1, mem: 2 * GIB });
  const [mounts, setMounts] = useState<Record<string, boolean>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (choice || !images.data) return;
    const preferred = images.data.find((i) => i.default_app) ?? images.data[0];
    setChoice(preferred ? preferred.name : OTHER);
  }, [images.data, choice]);
  const chosen = images.data?.find((img) => img.name === choice);
  const image = choice === OTHER ? typed.trim() : choice;
  useEffect(() => {
    if (!chosen) return;
    setType(chosen.service_ports.length ? "interactive" : "batch");
    setAmounts((a) => {
      const next = { ...a };
      for (const k of Object.keys(chosen.min_resources)) next[k] = Math.max(next[k] ?? 0, minOf(chosen, k));
      return next;
    });
  }, [chosen]);

  const quotaSlots = limits.data?.slots ?? {};
  const accelKinds = [
    ...new Set([
      ...Object.keys(quotaSlots),
      ...(chosen?.accelerators ?? []).map((k) => (k.includes(".") ? k : `${k}.device`)),
    ]),
  ].filter((k) => k !== "cpu" && k !== "mem");
  if (!accelKinds.length) accelKinds.push("cuda.device");
  const maxOf = (k: string): number => {
    const fallback = DEFAULT_MAX[k] ?? 8;
    const q = quotaSlots[k];
    return q ? Math.min(fallback, q.left) : fallback;
  };

  // When the remaining quota shrinks (another session started, an admin lowered a limit), the
  // request shrinks with it, so what the sliders show is what Launch sends.
  useEffect(() => {
    const slots = limits.data?.slots;
    if (!slots) return;
    setAmounts((a) => {
      const next = { ...a };
      for (const [k, q] of Object.entries(slots)) if ((next[k] ?? 0) > q.left) next[k] = q.left;
      return next;
    });
  }, [limits.data]);

  const applyPreset = (p: (typeof PRESETS)[number]) => {
    const next: Record<string, number> = {
      cpu: Math.max(p.cpu, minOf(chosen, "cpu")),
      mem: Math.max(p.memGiB * GIB, minOf(chosen, "mem")),
    };
    next[accelKinds.find((k) => k.endsWith(".device")) ?? accelKinds[0]] = p.accel;
    setAmounts(next);
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    const resources: Record<string, number | string> = {};
    for (const [k, v] of Object.entries(amounts)) {
      if (k === "mem") resources.mem = `${Math.round(v / 1024 ** 2)}m`;
      else if (v > 0) resources[k] = v;
    }
    const body: Record<string, unknown> = {
      image,
      type,
      resources,
      resource_group: group,
      project_id: projectId || undefined,
      mounts: Object.entries(mounts)
        .filter(([, on]) => on)
        .map(([folder]) => ({ folder, path: `/home/work/${folder}`, mode: "rw" })),
    };
    if (name) body.name = name;
    if (type === "batch") body.command = ["sh", "-c", command];
    try {
      const s = await call<Session>("POST", "/api/v1/sessions", { body });
      navigate(`/sessions/${s.id}`);
    } catch (err) {
      setError(explainLaunchError(err, names));
      limits.reload();
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} aria-label="Launch a session">
      <ErrorBanner error={projects.error ?? groups.error ?? images.error ?? limits.error ?? folders.error} />
      <Section title="What to run">
        <div className="grid2">
          <Field label="Project">
            {(id) => (
              <select id={id} value={projectId} onChange={(e) => setProjectId(e.target.value)}>
                {memberProjects.map((p) => (
                  <option key={p.id} value={p.id}>
                    {p.name}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field label="Resource group" hint="Only the groups your project may use are listed.">
            {(id) => (
              <select id={id} value={group} onChange={(e) => setGroup(e.target.value)}>
                {allowedGroups.map((g) => (
                  <option key={g.id} value={g.name}>
                    {g.name}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field label="Image" hint="Images that a live node holds.">
            {(id) => (
              <select id={id} value={choice} onChange={(e) => setChoice(e.target.value)}>
                {images.data?.map((img) => (
                  <option key={img.name} value={img.name}>
                    {img.name}
                    {img.default_app ? ` — ${img.default_app}` : ""}
                  </option>
                ))}
                <option value={OTHER}>Another image (type its reference)…</option>
              </select>
            )}
          </Field>
          <Field label="Session name (optional)">
            {(id) => <input id={id} value={name} onChange={(e) => setName(e.target.value)} />}
          </Field>
          {choice === OTHER ? (
            <Field label="Image reference" hint="For example registry.example/team/train:1.2">
              {(id) => <input id={id} required value={typed} onChange={(e) => setTyped(e.target.value)} />}
            </Field>
          ) : null}
        </div>
        {chosen ? <ImageFacts img={chosen} /> : null}
        <fieldset className="row">
          <legend>Type</legend>
          <label>
            <input
              type="radio"
              name="type"
              checked={type === "interactive"}
              onChange={() => setType("interactive")}
            />{" "}
            Interactive{chosen?.default_app ? ` (${chosen.default_app})` : ""}
          </label>
          <label>
            <input type="radio" name="type" checked={type === "batch"} onChange={() => setType("batch")} />{" "}
            Batch
          </label>
        </fieldset>
        {type === "batch" ? (
          <Field label="Command" hint="Run with sh -c inside the container.">
            {(id) => (
              <input
                id={id}
                required
                value={command}
                onChange={(e) => setCommand(e.target.value)}
                placeholder="python train.py --epochs 10"
              />
            )}
          </Field>
        ) : null}
      </Section>
      <Section title="Resources">
        <div className="row" role="group" aria-label="Presets">
          {PRESETS.map((p) => (
            <button key={p.name} type="button" onClick={() => applyPreset(p)}>
              {p.name}
            </button>
          ))}
        </div>
        {limits.data?.sessionsLeft ? (
          <Notice>
            {limits.data.sessionsLeft.left} of {limits.data.sessionsLeft.limit} concurrent sessions left (
            {scopeWords(limits.data.sessionsLeft.scope, names)}).
          </Notice>
        ) : null}
        <div className="sliders">
          {["cpu", "mem", ...accelKinds].map((k) => {
            const max = maxOf(k);
            const step = k === "mem" ? 0.5 * GIB : k.endsWith(".shares") ? 0.1 : k === "cpu" ? 0.5 : 1;
            const value = Math.min(amounts[k] ?? 0, max);
            const q = quotaSlots[k];
            return (
              <Field
                key={k}
                label={slotLabel(k)}
                hint={
                  <span data-testid={`quota-${k}`}>
                    {q
                      ? `${slot(k, q.left)} of ${slot(k, q.limit)} left (quota of ${scopeWords(q.scope, names)})`
                      : "no quota limit"}
                  </span>
                }
              >
                {(id) => (
                  <div className="slider">
                    <input
                      id={id}
                      type="range"
                      min={0}
                      max={max}
                      step={step}
                      value={value}
                      data-slot={k}
                      onChange={(e) => setAmounts({ ...amounts, [k]: Number(e.target.value) })}
                    />
                    <output htmlFor={id}>{k === "mem" ? bytes(value) : value}</output>
                  </div>
                )}
              </Field>
            );
          })}
        </div>
      </Section>
      <Section title="Folders">
        {folders.data?.length === 0 ? (
          <p className="muted">You have no folders. Create one on the Data page.</p>
        ) : (
          <fieldset className="row">
            <legend>Mount at /home/work/&lt;name&gt;</legend>
            {folders.data?.map((f) => (
              <label key={f.id}>
                <input
                  type="checkbox"
                  checked={!!mounts[f.name]}
                  onChange={(e) => setMounts({ ...mounts, [f.name]: e.target.checked })}
                />{" "}
                {f.name}
              </label>
            ))}
          </fieldset>
        )}
      </Section>
      <ErrorBanner error={error} />
      <button type="submit" className="primary" disabled={busy || !image}>
        {busy ? "Launching…" : "Launch"}
      </button>
    </form>
  );
}
