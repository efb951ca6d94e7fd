// Manager resources, straight from the OpenAPI document (src/api/schema.d.ts is generated from
// it by scripts/build-web-ui), so a change of the manager's models fails the type check here.
import type { components } from "./schema";

type S = components["schemas"];

export type SessionStatus = S["SessionStatus"];
export type Session = S["SessionOut"];
export type Verdict = S["VerdictOut"];
export type ContainerInfo = S["ContainerOut"];
export type HistoryEntry = S["HistoryOut"];
export type Agent = S["AgentOut"];
export type Image = S["ImageOut"];
export type Quota = S["QuotaOut"];
export type QuotaSet = S["QuotaSet"];
export type UsageLine = S["UsageLineOut"];
export type UsageReport = S["UsageReport"];
export type VFolder = S["VFolderOut"];
export type FileEntry = S["FileEntry"];
export type Share = S["ShareOut"];
/** A storage-proxy grant for one file operation (the vfolder token endpoint). */
export type StorageToken = S["FolderTokenOut"];

export const TERMINAL_STATUSES: SessionStatus[] = ["terminated", "cancelled", "error"];

/** Quota scopes a PUT /api/v1/quotas/{kind}/{id} accepts. */
export const QUOTA_KINDS = ["domain", "project", "user", "user_in_project"] as const;
export type QuotaKind = (typeof QUOTA_KINDS)[number];
