// The image registry (GET /api/v1/images): what the Launch picker offers and which web services
// a running session exposes through the app proxy at /apps/{session}/{service}/.
import { call } from "./client";
import type { Image, Session } from "./types";

const TTL_MS = 30_000;
let cached: { at: number; pending: Promise<Image[]> } | null = null;

/** Every image known to a live node (cached briefly: many rows share one image list). */
export function loadImages(): Promise<Image[]> {
  if (!cached || Date.now() - cached.at > TTL_MS) {
    const pending = call<{ items: Image[] }>("GET", "/api/v1/images").then((r) => r.items);
    pending.catch(() => {
      cached = null;
    });
    cached = { at: Date.now(), pending };
  }
  return cached.pending;
}

export interface AppLink {
  service: string;
  label: string;
  href: string;
}

function isJupyter(service: string): boolean {
  return /jupyter/i.test(service);
}

/** The HTTP services of the session's image, the image's default app first. */
export function appLinks(s: Session, images: Image[] | undefined): AppLink[] {
  const image = images?.find((i) => i.name === s.image);
  if (!image) return [];
  const http = image.service_ports.filter((p) => p.protocol === "http" || p.protocol === "https");
  http.sort((a, b) => Number(b.name === image.default_app) - Number(a.name === image.default_app));
  return http.map((p) => {
    const base = `/apps/${encodeURIComponent(s.id)}/${encodeURIComponent(p.name)}/`;
    // JupyterLab lives under lab/ (the server root only redirects there).
    return isJupyter(p.name)
      ? { service: p.name, label: "Open JupyterLab", href: `${base}lab` }
      : { service: p.name, label: `Open ${p.name}`, href: base };
  });
}
