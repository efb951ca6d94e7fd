import { useEffect, useMemo, useState, type FormEvent } from "react";
import { ApiError, call, listAll, type Project, type ResourceGroup } from "../api/client";
import type { Image, Session, VFolder } from "../api/types";
import { useAuth } from "../auth";
import { useLoad } from "../hooks";
import { bytes, slot, slotLabel } from "../format";
import { navigate } from "../router";
import { ErrorBanner, Field, Notice, Section } from "../components/ui";
import { loadLimits } from "./launchLimits";

const GIB = 1024 ** 3;
const PRESETS: Array<{ name: string; cpu: number; memGiB: number; accel: number }> = [
  { name: "Small", cpu: 1, memGiB: 2, accel: 0 },
  { name: "Medium", cpu: 4, memGiB: 16, accel: 0 },
  { name: "1 GPU", cpu: 4, memGiB: 16, accel: 1 },
  { name: "2 GPUs", cpu: 8, memGiB: 32, accel: 2 },
];
const DEFAULT_MAX: Record<string, number> = { cpu: 64, mem: 256 * GIB };

function imageRef(img: Image): string {
  if (typeof img.ref === "string") return img.ref;
  return img.tag && !img.name.includes(":") ? `${img.name}:${img.tag}` : img.name;
}

async function optionalList<T>(path: string, query: Record<string, string | boolean> = {}) {
  try {
    return await listAll<T>(path, query, 500);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 403)) return null;
    throw err;
  }
}

export function LaunchPage() {
  const { me, isAdmin } = useAuth();
  const projects = useLoad(() => listAll<Project>("/api/v1/projects"), []);
  const groups = useLoad(() => listAll<ResourceGroup>("/api/v1/resource-groups"), []);
  const [projectId, setProjectId] = useState<string>("");
  const images = useLoad(async () => {
    try {
      const r = await call<{ items: Image[] }>("GET", "/api/v1/images", {
        query: { project_id: projectId || undefined },
      });
      return r.items;
    } catch (err) {
      if (err instanceof ApiError && err.missingRoute) return null;
      throw err;
    }
  }, [projectId]);
  const folders = useLoad(() => optionalList<VFolder>("/api/v1/vfolders"), []);

  const memberProjects = useMemo(() => {
    const roles = me?.project_roles ?? {};
    const all = projects.data ?? [];
    const mine = all.filter((p) => p.id in roles);
    return mine.length ? mine : all;
  }, [projects.data, me]);

  useEffect(() => {
    if (!projectId && memberProjects.length) setProjectId(memberProjects[0].id);
  }, [memberProjects, projectId]);
  const limits = useLoad(() => loadLimits(projectId || null, isAdmin), [projectId, isAdmin]);

  const allowedGroups = (groups.data ?? []).filter(
    (g) => !g.project_ids?.length || g.project_ids.includes(projectId),
  );
  const [group, setGroup] = useState("default");
  useEffect(() => {
    if (allowedGroups.length && !allowedGroups.some((g) => g.name === group))
      setGroup(allowedGroups[0].name);
  }, [allowedGroups, group]);

  const [name, setName] = useState("");
  const [image, setImage] = useState("");
  const [type, setType] = useState<"interactive" | "batch">("interactive");
  const [command, setCommand] = useState("");
  const [amounts, setAmounts] = useState<Record<string, number>>({ cpu: 1, mem: 2 * GIB });
  const [mounts, setMounts] = useState<Record<string, boolean>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!image && images.data?.length) setImage(imageRef(images.data[0]));
  }, [images.data, image]);

  const chosen = images.data?.find((img) => imageRef(img) === image);
  const kinds = [
    ...new Set([
      ...(limits.data?.kinds ?? ["cpu", "mem"]),
      ...(chosen?.accelerators ?? []).map((k) => (k.includes(".") ? k : `${k}.device`)),
    ]),
  ];
  const accelKinds = kinds.filter((k) => k !== "cpu" && k !== "mem");
  const maxOf = (k: string): number => {
    const left = limits.data?.remaining[k];
    const fallback = DEFAULT_MAX[k] ?? 8;
    return left == null ? fallback : Math.min(fallback, left);
  };

  const applyPreset = (p: (typeof PRESETS)[number]) => {
    const next: Record<string, number> = { cpu: p.cpu, mem: p.memGiB * GIB };
    const accel = accelKinds.find((k) => k.endsWith(".device")) ?? accelKinds[0];
    if (accel) next[accel] = p.accel;
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
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} aria-label="Launch a session">
      <ErrorBanner error={projects.error ?? groups.error ?? limits.error} />
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
                {allowedGroups.length ? (
                  allowedGroups.map((g) => (
                    <option key={g.id} value={g.name}>
                      {g.name}
                    </option>
                  ))
                ) : (
                  <option value="default">default</option>
                )}
              </select>
            )}
          </Field>
          <Field
            label="Image"
            hint={
              images.data === null
                ? "This manager has no image registry; type an image reference."
                : "Pick from the registry or type a reference."
            }
          >
            {(id) => (
              <>
                <input
                  id={id}
                  list={`${id}-list`}
                  required
                  value={image}
                  onChange={(e) => setImage(e.target.value)}
                />
                <datalist id={`${id}-list`}>
                  {images.data?.map((img) => (
                    <option key={imageRef(img)} value={imageRef(img)} />
                  ))}
                </datalist>
              </>
            )}
          </Field>
          <Field label="Session name (optional)">
            {(id) => <input id={id} value={name} onChange={(e) => setName(e.target.value)} />}
          </Field>
        </div>
        <fieldset className="row">
          <legend>Type</legend>
          <label>
            <input
              type="radio"
              name="type"
              checked={type === "interactive"}
              onChange={() => setType("interactive")}
            />{" "}
            Interactive (JupyterLab)
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
        {limits.data && !limits.data.quotaKnown ? (
          <Notice>This manager does not report quotas; the scheduler checks them at launch.</Notice>
        ) : null}
        <div className="sliders">
          {["cpu", "mem", ...accelKinds].map((k) => {
            const max = maxOf(k);
            const step = k === "mem" ? 0.5 * GIB : k.endsWith(".shares") ? 0.1 : 1;
            const value = Math.min(amounts[k] ?? 0, max);
            const d = limits.data?.detail[k];
            return (
              <Field
                key={k}
                label={slotLabel(k)}
                hint={
                  d
                    ? `${slot(k, Math.max(0, d.limit - d.used))} of ${slot(k, d.limit)} left (${d.scope})`
                    : "no quota limit reported"
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
        {folders.data === null ? (
          <p className="muted">This manager has no virtual folders yet.</p>
        ) : folders.data?.length === 0 ? (
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
