// A small tus 1.0 client (creation + core): resumable uploads to the storage proxy. The upload
// URL is remembered per file fingerprint so a retry after a dropped connection resumes.
const CHUNK = 4 * 1024 * 1024;

function b64(text: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

export interface TusOptions {
  endpoint: string; // .../v1/upload
  token: string;
  file: File;
  metadata: Record<string, string>;
  onProgress(sent: number, total: number): void;
  signal?: AbortSignal;
}

function fingerprint(o: TusOptions): string {
  return `berth.tus:${o.endpoint}:${JSON.stringify(o.metadata)}:${o.file.size}:${o.file.lastModified}`;
}

export async function tusUpload(o: TusOptions): Promise<void> {
  const auth = { Authorization: `Bearer ${o.token}`, "Tus-Resumable": "1.0.0" };
  const key = fingerprint(o);
  let url = localStorage.getItem(key);
  let offset = 0;
  if (url) {
    const head = await fetch(url, { method: "HEAD", headers: auth, signal: o.signal });
    if (head.ok) offset = Number(head.headers.get("Upload-Offset") ?? 0);
    else url = null;
  }
  if (!url) {
    const created = await fetch(o.endpoint, {
      method: "POST",
      signal: o.signal,
      headers: {
        ...auth,
        "Upload-Length": String(o.file.size),
        "Upload-Metadata": Object.entries(o.metadata)
          .map(([k, v]) => `${k} ${b64(v)}`)
          .join(","),
      },
    });
    if (created.status !== 201) throw new Error(await errorText(created, "could not start the upload"));
    url = new URL(created.headers.get("Location") ?? "", o.endpoint).toString();
    localStorage.setItem(key, url);
  }
  o.onProgress(offset, o.file.size);
  while (offset < o.file.size) {
    const chunk = o.file.slice(offset, offset + CHUNK);
    const res = await fetch(url, {
      method: "PATCH",
      signal: o.signal,
      headers: { ...auth, "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" },
      body: chunk,
    });
    if (res.status !== 204) throw new Error(await errorText(res, "upload chunk refused"));
    offset = Number(res.headers.get("Upload-Offset") ?? offset + chunk.size);
    o.onProgress(offset, o.file.size);
  }
  localStorage.removeItem(key);
}

async function errorText(res: Response, fallback: string): Promise<string> {
  try {
    const body = await res.json();
    if (body && typeof body.message === "string") return body.message;
  } catch {
    /* not JSON */
  }
  return `${fallback} (HTTP ${res.status})`;
}
