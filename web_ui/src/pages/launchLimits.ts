// What a user may still request: the caller's occupancy against every limit that applies to a
// session in the chosen project (GET /api/v1/usage/quota), the tightest limit per slot.
import { call } from "../api/client";
import type { Quota } from "../api/types";
import { parseBytes } from "../format";

export interface SlotLimit {
  limit: number;
  used: number;
  left: number;
  scope: string;
}

export interface Limits {
  /** slot name → the tightest limit that applies (absent: unlimited). */
  slots: Record<string, SlotLimit>;
  /** The scopes that apply, for the quota table. */
  scopes: Quota[];
  /** Concurrent sessions left under the tightest max_concurrent_sessions (null: no limit). */
  sessionsLeft: { left: number; limit: number; scope: string } | null;
}

function amount(name: string, v: string | undefined): number {
  if (v === undefined) return 0;
  return name === "mem" ? parseBytes(v) : Number(v);
}

/** Whether a quota scope bounds a session of `projectId` started by the caller. */
export function appliesTo(scope: string, projectId: string): boolean {
  const [kind, rest = ""] = scope.split(":");
  if (kind === "domain" || kind === "user") return true;
  if (kind === "project") return rest === projectId;
  if (kind === "user_in_project") return rest.split("/")[0] === projectId;
  return false;
}

export async function loadLimits(projectId: string): Promise<Limits> {
  const all = (await call<{ items: Quota[] }>("GET", "/api/v1/usage/quota")).items;
  const scopes = all.filter((q) => appliesTo(q.scope, projectId));
  const slots: Limits["slots"] = {};
  let sessionsLeft: Limits["sessionsLeft"] = null;
  for (const q of scopes) {
    for (const [name, raw] of Object.entries(q.slots ?? {})) {
      const limit = amount(name, raw);
      const used = amount(name, q.used?.[name]);
      if (!Number.isFinite(limit)) continue;
      const left = Math.max(0, limit - used);
      // Quotas nest (domain ⊇ project ⊇ user): the tightest remaining amount wins.
      if (!slots[name] || left < slots[name].left) slots[name] = { limit, used, left, scope: q.scope };
    }
    if (q.max_concurrent_sessions != null) {
      const left = Math.max(0, q.max_concurrent_sessions - (q.sessions ?? 0));
      if (!sessionsLeft || left < sessionsLeft.left)
        sessionsLeft = { left, limit: q.max_concurrent_sessions, scope: q.scope };
    }
  }
  return { slots, scopes, sessionsLeft };
}
