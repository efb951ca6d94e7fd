// Quota scopes and quota refusals in words ("project vision", not "project:<uuid>").
import { ApiError } from "../api/client";
import { slot, slotLabel } from "../format";

export interface Names {
  projects: Map<string, string>;
  users: Map<string, string>;
  me?: string;
}

export function scopeWords(scope: string, names: Names): string {
  const [kind, rest = ""] = scope.split(":");
  if (kind === "domain") return "the domain";
  if (kind === "project") return `project ${names.projects.get(rest) ?? rest}`;
  if (kind === "user")
    return rest === names.me ? "your account" : `user ${names.users.get(rest) ?? rest}`;
  if (kind === "user_in_project") {
    const [p, u] = rest.split("/");
    const who = u === names.me ? "you" : (names.users.get(u) ?? u);
    return `${who} in project ${names.projects.get(p) ?? p}`;
  }
  return scope;
}

/** A launch refusal restated in words when the manager says which limit it hit. */
export function explainLaunchError(err: unknown, names: Names): unknown {
  if (!(err instanceof ApiError) || err.code !== "quota_exceeded") return err;
  const d = (err.details ?? {}) as Record<string, unknown>;
  if (typeof d.slot !== "string" || typeof d.scope !== "string") return err;
  const s = d.slot;
  const where = scopeWords(d.scope, names);
  const limit = slot(s, d.limit as string);
  const text =
    `Not enough quota: you asked for ${slot(s, d.requested as string)} of ${slotLabel(s)}, ` +
    `but the quota of ${where} allows at most ${limit} in all. ` +
    "Ask an administrator to raise it, or request less.";
  return new ApiError(err.status, err.code, text, err.requestId, err.details);
}
