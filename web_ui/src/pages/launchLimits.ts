// What a user may request: slot kinds and the remaining quota, from whatever the manager tells.
import { ApiError, listAll } from "../api/client";
import type { Agent, Quota } from "../api/types";
import { parseBytes } from "../format";

export interface Limits {
  /** slot name → remaining amount (null: no limit known). */
  remaining: Record<string, number | null>;
  /** slot name → the limit and current usage, for display. */
  detail: Record<string, { limit: number; used: number; scope: string }>;
  kinds: string[];
  quotaKnown: boolean;
}

const BASE_KINDS = ["cpu", "mem"];

function num(name: string, v: string | number | undefined | null): number {
  if (v === undefined || v === null) return NaN;
  return name === "mem" ? parseBytes(v) : Number(v);
}

async function optional<T>(p: Promise<T>): Promise<T | null> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 403 || err.status === 404)) return null;
    throw err;
  }
}

export async function loadLimits(projectId: string | null, isAdmin: boolean): Promise<Limits> {
  const kinds = new Set<string>(BASE_KINDS);
  const quotas = await optional(
    listAll<Quota>("/api/v1/quotas", { project_id: projectId ?? undefined, effective: true }),
  );
  const remaining: Record<string, number | null> = {};
  const detail: Limits["detail"] = {};
  for (const q of quotas ?? []) {
    for (const [name, limitRaw] of Object.entries(q.slots ?? {})) {
      kinds.add(name);
      const limit = num(name, limitRaw);
      const used = num(name, q.usage?.[name] ?? 0) || 0;
      if (!Number.isFinite(limit)) continue;
      const left = Math.max(0, limit - used);
      // Quotas nest (domain ⊇ project ⊇ user): the tightest remaining amount wins.
      if (remaining[name] == null || left < (remaining[name] as number)) {
        remaining[name] = left;
        detail[name] = { limit, used, scope: q.scope };
      }
    }
  }
  if (isAdmin) {
    const agents = await optional(listAll<Agent>("/api/v1/agents", {}, 500));
    for (const a of agents ?? []) for (const k of Object.keys(a.capacity ?? {})) kinds.add(k);
  }
  if (![...kinds].some((k) => k.includes("."))) kinds.add("cuda.device");
  return { remaining, detail, kinds: [...kinds], quotaKnown: quotas !== null };
}
