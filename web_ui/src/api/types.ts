// Shapes of manager resources that are newer than (or optional in) the generated client. They
// mirror the manager's pydantic response models; pages read them defensively because a given
// deployment may not have every route yet.

export type SessionStatus =
  | "pending"
  | "scheduled"
  | "preparing"
  | "running"
  | "terminating"
  | "terminated"
  | "cancelled"
  | "error";

export const TERMINAL_STATUSES: SessionStatus[] = ["terminated", "cancelled", "error"];

export interface Verdict {
  code: string;
  message: string;
  queue_position: number | null;
  details: Record<string, unknown>;
  at?: string | null;
}

export interface ContainerInfo {
  id: string;
  index: number;
  attempt: number;
  node_id: string;
  state: string;
  slots: Record<string, string | number>;
  devices: Record<string, string[]>;
  ports: Array<Record<string, unknown>>;
  exit_code: number | null;
  started_at: string | null;
  finished_at: string | null;
}

export interface Session {
  id: string;
  name: string;
  type: "interactive" | "batch" | string;
  status: SessionStatus;
  status_reason: string;
  status_message: string;
  result: string | null;
  exit_code: number | null;
  image: string;
  command: string[] | null;
  resource_group: string;
  project_id: string;
  user_id: string;
  resources: Record<string, string | number>;
  containers: number;
  priority: number;
  tags: string[];
  mounts: Array<Record<string, unknown>>;
  idle_timeout_s: number | null;
  max_duration_s: number | null;
  created_at: string;
  started_at: string | null;
  terminated_at: string | null;
  last_activity_at?: string | null;
  idle_deadline_at?: string | null;
  services?: Array<{ name: string; url?: string } | string>;
  pending?: Verdict | null;
  container_list?: ContainerInfo[];
}

export interface HistoryEntry {
  status: SessionStatus;
  reason: string;
  message: string;
  at: string;
}

export interface Agent {
  id: string;
  resource_group: string;
  advertised_url: string;
  architecture: string;
  runtime: string;
  agent_version: string;
  status: string;
  cordoned: boolean;
  draining: boolean;
  capacity: Record<string, string | number>;
  allocated: Record<string, string | number>;
  utilisation: Record<string, string | number>;
  devices: Array<Record<string, unknown>>;
  device_allocated: Record<string, Record<string, string | number>>;
  runtime_health: Record<string, unknown>;
  plugin_errors: Record<string, unknown>;
  containers: number;
  last_heartbeat_at: string;
  lost_at: string | null;
}

export interface Image {
  id?: string;
  name: string;
  default_app?: string | null;
  service_ports?: Array<{ name: string; protocol: string; container_port: number }>;
  accelerators?: string[];
  tag?: string;
  ref?: string;
  architecture?: string;
  labels?: Record<string, string>;
  services?: Array<string | { name: string }>;
  min_resources?: Record<string, string | number>;
  [key: string]: unknown;
}

export interface Quota {
  scope: string;
  scope_type?: string;
  scope_id?: string;
  slots: Record<string, string | number>;
  usage?: Record<string, string | number>;
  max_concurrent_sessions?: number | null;
  max_pending_sessions?: number | null;
  max_session_lifetime_s?: number | null;
  default_idle_timeout_s?: number | null;
  allowed_resource_groups?: string[] | null;
  sessions?: number;
  [key: string]: unknown;
}

export interface UsageRow {
  project_id?: string | null;
  project?: string | null;
  user_id?: string | null;
  user?: string | null;
  username?: string | null;
  gpu_hours?: number | string;
  [key: string]: unknown;
}

export interface VFolder {
  id: string;
  name: string;
  host?: string;
  volume?: string;
  usage_bytes?: number | null;
  used_bytes?: number | null;
  quota_bytes?: number | null;
  ownership?: string;
  permission?: string;
  [key: string]: unknown;
}

export interface FileEntry {
  name: string;
  path?: string;
  type?: string;
  kind?: string;
  is_dir?: boolean;
  size: number;
  mtime?: string | number;
  modified_at?: string;
}

export interface StorageToken {
  token: string;
  url?: string;
  endpoint?: string;
  base_url?: string;
  expires_at?: string;
  [key: string]: unknown;
}
