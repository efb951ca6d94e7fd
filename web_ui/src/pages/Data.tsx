import { useState, type DragEvent, type FormEvent } from "react";
import { ApiError, call, listAll } from "../api/client";
import type { FileEntry, StorageToken, VFolder } from "../api/types";
import { tusUpload } from "../api/tus";
import { useLoad } from "../hooks";
import { bytes, when } from "../format";
import { Empty, ErrorBanner, Field, Meter, Notice, Section } from "../components/ui";

async function folderAccess(f: VFolder): Promise<{ base: string; token: string }> {
  const t = await call<StorageToken>("POST", `/api/v1/vfolders/${encodeURIComponent(f.id)}/token`, {
    body: { ops: ["read", "write"] },
  });
  const base = String(t.url ?? t.endpoint ?? t.base_url ?? "").replace(/\/+$/, "");
  return { base, token: t.token };
}

async function proxy<T>(
  access: { base: string; token: string },
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const res = await fetch(`${access.base}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${access.token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) {
    let message = `storage proxy answered HTTP ${res.status}`;
    try {
      const b = await res.json();
      if (b?.message) message = b.message;
    } catch {
      /* keep the status text */
    }
    throw new ApiError(res.status, "storage_error", message);
  }
  return res.status === 204 ? (undefined as T) : ((await res.json()) as T);
}

export function DataPage() {
  const folders = useLoad(() => listAll<VFolder>("/api/v1/vfolders", {}, 500), []);
  const [name, setName] = useState("");
  const [open, setOpen] = useState<VFolder | null>(null);
  const [error, setError] = useState<unknown>(null);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const f = await call<VFolder>("POST", "/api/v1/vfolders", { body: { name } });
      setName("");
      folders.reload();
      setOpen(f);
    } catch (err) {
      setError(err);
    }
  };

  return (
    <>
      <Section title="Folders">
        <form className="row" onSubmit={create} aria-label="Create a folder">
          <Field label="New folder name">
            {(id) => <input id={id} required value={name} onChange={(e) => setName(e.target.value)} />}
          </Field>
          <button type="submit" className="primary">
            Create folder
          </button>
        </form>
        <ErrorBanner error={folders.error ?? error} />
        {folders.data?.length === 0 ? <Empty>No folders yet.</Empty> : null}
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Host</th>
              <th>Owner</th>
              <th>Usage vs quota</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {folders.data?.map((f) => {
              const used = Number(f.usage_bytes ?? f.used_bytes ?? 0);
              const quota = f.quota_bytes ? Number(f.quota_bytes) : null;
              return (
                <tr key={f.id}>
                  <td>{f.name}</td>
                  <td>{f.host ?? f.volume ?? "—"}</td>
                  <td>{f.ownership ?? "—"}</td>
                  <td>
                    <Meter label={`${f.name} usage`} used={used} limit={quota} text={`${bytes(used)} / ${quota ? bytes(quota) : "no quota"}`} />
                  </td>
                  <td>
                    <button type="button" onClick={() => setOpen(f)}>
                      Browse {f.name}
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </Section>
      {open ? <Browser key={open.id} folder={open} /> : null}
    </>
  );
}

function Browser({ folder }: { folder: VFolder }) {
  const [dir, setDir] = useState("");
  const access = useLoad(() => folderAccess(folder), [folder.id]);
  const files = useLoad(
    () =>
      access.data
        ? proxy<{ entries?: FileEntry[]; items?: FileEntry[] }>(access.data, "GET", `/v1/files?path=${encodeURIComponent(dir)}`).then(
            (r) => r.entries ?? r.items ?? [],
          )
        : Promise.resolve([] as FileEntry[]),
    [access.data, dir],
  );
  const [progress, setProgress] = useState<Record<string, number>>({});
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);
  const join = (n: string) => (dir ? `${dir}/${n}` : n);
  const isDir = (f: FileEntry) => f.is_dir ?? ["dir", "directory"].includes(String(f.type ?? f.kind));

  const run = async (what: () => Promise<unknown>, done: string) => {
    setError(null);
    setMessage(null);
    try {
      await what();
      setMessage(done);
      files.reload();
    } catch (err) {
      setError(err);
    }
  };

  const upload = async (list: FileList | File[]) => {
    if (!access.data) return;
    for (const file of Array.from(list)) {
      await run(
        () =>
          tusUpload({
            endpoint: `${access.data!.base}/v1/upload`,
            token: access.data!.token,
            file,
            metadata: { path: join(file.name), filename: file.name },
            onProgress: (sent, total) => setProgress((p) => ({ ...p, [file.name]: total ? sent / total : 1 })),
          }),
        `Uploaded ${file.name}.`,
      );
    }
  };

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    void upload(e.dataTransfer.files);
  };

  const download = (f: FileEntry) => {
    if (!access.data) return;
    const url = `${access.data.base}/v1/download?path=${encodeURIComponent(join(f.name))}&token=${encodeURIComponent(access.data.token)}`;
    const a = document.createElement("a");
    a.href = url;
    a.download = f.name;
    a.click();
  };

  return (
    <Section
      title={`Files in ${folder.name}${dir ? `/${dir}` : ""}`}
      actions={
        <>
          {dir ? (
            <button type="button" onClick={() => setDir(dir.split("/").slice(0, -1).join("/"))}>
              Up
            </button>
          ) : null}
          <button
            type="button"
            onClick={() => {
              const n = prompt("Folder name");
              if (n) void run(() => proxy(access.data!, "POST", "/v1/mkdir", { path: join(n) }), `Created ${n}.`);
            }}
          >
            New folder
          </button>
          <button
            type="button"
            onClick={() => {
              const who = prompt("Share with which user (username)?");
              if (who)
                void run(
                  () => call("POST", `/api/v1/vfolders/${encodeURIComponent(folder.id)}/share`, { body: { username: who, permission: "ro" } }),
                  `Shared ${folder.name} with ${who} (read-only).`,
                );
            }}
          >
            Share…
          </button>
        </>
      }
    >
      <ErrorBanner error={access.error ?? files.error ?? error} />
      {message ? <Notice>{message}</Notice> : null}
      <div
        className={`dropzone${dragging ? " over" : ""}`}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        <p>Drop files here to upload (resumable), or</p>
        <Field label="Choose files to upload">
          {(id) => <input id={id} type="file" multiple onChange={(e) => e.target.files && void upload(e.target.files)} />}
        </Field>
        {Object.entries(progress).map(([n, p]) => (
          <div key={n} className="meter-row">
            <span className="meter-label">{n}</span>
            <Meter label={`upload ${n}`} used={p} limit={1} text={`${Math.round(p * 100)}%`} />
          </div>
        ))}
      </div>
      <table data-testid="files-table">
        <thead>
          <tr>
            <th>Name</th>
            <th>Size</th>
            <th>Modified</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {files.data?.map((f) => (
            <tr key={f.name}>
              <td>
                {isDir(f) ? (
                  <button type="button" className="link" onClick={() => setDir(join(f.name))}>
                    📁 {f.name}
                  </button>
                ) : (
                  f.name
                )}
              </td>
              <td>{isDir(f) ? "—" : bytes(f.size)}</td>
              <td>{typeof f.mtime === "number" ? when(new Date(f.mtime * 1000).toISOString()) : when(String(f.mtime ?? f.modified_at ?? ""))}</td>
              <td className="actions">
                {!isDir(f) ? (
                  <button type="button" onClick={() => download(f)}>
                    Download
                  </button>
                ) : null}
                <button
                  type="button"
                  onClick={() => {
                    const n = prompt("New name", f.name);
                    if (n && n !== f.name)
                      void run(() => proxy(access.data!, "POST", "/v1/move", { src: join(f.name), dst: join(n) }), `Renamed to ${n}.`);
                  }}
                >
                  Rename
                </button>
                <button
                  type="button"
                  className="danger"
                  onClick={() => {
                    if (confirm(`Delete ${f.name}?`))
                      void run(() => proxy(access.data!, "POST", "/v1/delete", { paths: [join(f.name)], recursive: true }), `Deleted ${f.name}.`);
                  }}
                >
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  );
}
