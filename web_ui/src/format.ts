export function age(from: string | null | undefined, now = Date.now()): string {
  if (!from) return "—";
  return duration((now - new Date(from).getTime()) / 1000);
}

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

export function bytes(n: number | string | null | undefined): string {
  const v = Number(n);
  if (n === null || n === undefined || !Number.isFinite(v)) return "—";
  let x = v;
  let i = 0;
  while (Math.abs(x) >= 1024 && i < UNITS.length - 1) {
    x /= 1024;
    i++;
  }
  return `${i === 0 ? x : x.toFixed(1)} ${UNITS[i]}`;
}

/** Parse "4g", "512m", "1024" into bytes (the manager's memory notation). */
export function parseBytes(value: string | number): number {
  if (typeof value === "number") return value;
  const m = /^\s*([\d.]+)\s*([kmgtp]?)(i?b?)?\s*$/i.exec(value);
  if (!m) return Number(value);
  const pow = { "": 0, k: 1, m: 2, g: 3, t: 4, p: 5 }[m[2].toLowerCase() as "" | "k"] ?? 0;
  return Number(m[1]) * 1024 ** pow;
}

/** A slot amount in words: mem in bytes, cpu in cores, accelerators as counts or shares. */
export function slot(name: string, value: string | number | undefined | null): string {
  if (value === undefined || value === null) return "—";
  if (name === "mem" || name.endsWith(".mem") || name === "memory") return bytes(parseBytes(value));
  const n = Number(value);
  return Number.isFinite(n) ? String(Math.round(n * 100) / 100) : String(value);
}

export function slotLabel(name: string): string {
  if (name === "cpu") return "CPU cores";
  if (name === "mem") return "Memory";
  const [kind, unit] = name.split(".");
  const nice: Record<string, string> = { cuda: "NVIDIA GPU", rocm: "AMD GPU", fake: "Fake GPU" };
  return `${nice[kind] ?? kind}${unit ? ` (${unit})` : ""}`;
}

export function when(value: string | null | undefined): string {
  return value ? new Date(value).toLocaleString() : "—";
}
