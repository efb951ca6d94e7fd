import { useState, type DragEvent, type FormEvent } from "react";
import { ApiError, call, listAll, type Project, type User } from "../api/client";
import type { FileEntry, Share, StorageToken, VFolder } from "../api/types";
import { tusUpload } from "../api/tus";
import { useLoad } from "../hooks";
import { bytes, when } from "../format";
import { Empty, ErrorBanner, Field, Meter, Notice, Section } from "../components/ui";

const folderPath = (f: VFolder, rest = "") => `/api/v1/vfolders/${encodeURIComponent(f.id)}${rest}`;

/** A storage-proxy grant for one operation (the manager mints it; the proxy checks it). */
function grant(f: VFolder, op: "upload" | "download", path: string): Promise<StorageToken> {
  return call<StorageToken>("POST", folderPath(f, "/token"), { body: { op, path } });
}

async function optional<T>(p: Promise<T>): Promise<T | null> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) return null;
    throw err;
  }
}

export function DataPage() {
  const folders = useLoad(() => listAll<VFolder>("/api/v1/vfolders", { with_usage: true }, 500), []);
  const [name, setName] = useState("");
  const [openId, setOpenId] = useState<string | null>(null);
  const [renaming, setRenaming] = useState<{ id: string; name: string } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);
  const open = folders.data?.find((f) => f.id === openId) ?? null;

  const act = async (what: () => Promise<unknown>, done: string) => {
    setError(null);
    setMessage(null);
    try {
      await what();
      setMessage(done);
      folders.reload();
    } catch (err) {
      setError(err);
    }
  };

  const create = (e: FormEvent) => {
    e.preventDefault();
    void act(async () => {
      const f = await call<VFolder>("POST", "/api/v1/vfolders", { body: { name } });
      setName("");
      setOpenId(f.id);
    }, `Created folder ${name}.`);
  };

  return (
    <>
      <Section title="Folders">
        <form className="row" onSubmit={create} aria-label="Create a folder">
          <Field label="New folder name" hint="Letters, digits, dot, dash and underscore.">
            {(id) => <input id={id} required value={name} onChange={(e) => setName(e.target.value)} />}
          </Field>
          <button type="submit" className="primary">
            Create folder
          </button>
        </form>
        <ErrorBanner error={folders.error ?? error} />
        {message ? <Notice>{message}</Notice> : null}
        {folders.data?.length === 0 ? <Empty>No folders yet.</Empty> : null}
        {folders.data?.length ? (
          <table data-testid="folders-table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Volume</th>
                <th>Access</th>
                <th>Usage vs quota</th>
                <th>Actions</th>
              </tr>
            </thead>
            <tbody>
              {folders.data.map((f) => {
                const used = Number(f.usage?.used_bytes ?? f.used_bytes ?? 0);
                const quota = f.quota_bytes ?? null;
                return (
                  <tr key={f.id} data-folder={f.name}>
                    <td>
                      {renaming?.id === f.id ? (
                        <form
                          className="row"
                          aria-label={`Rename folder ${f.name}`}
                          onSubmit={(e) => {
                            e.preventDefault();
                            const to = renaming.name;
                            void act(
                              () => call("PATCH", folderPath(f), { body: { name: to } }).then(() => setRenaming(null)),
                              `Renamed ${f.name} to ${to}.`,
                            );
                          }}
                        >
                          <Field label="New name">
                            {(id) => (
                              <input id={id} required autoFocus value={renaming.name} onChange={(e) => setRenaming({ id: f.id, name: e.target.value })} />
                            )}
                          </Field>
                          <button type="submit">Save</button>
                          <button type="button" onClick={() => setRenaming(null)}>
                            Cancel
                          </button>
                        </form>
                      ) : (
                        f.name
                      )}
                      {f.status !== "ready" ? <div className="muted">{f.status}</div> : null}
                    </td>
                    <td>{f.volume}</td>
                    <td>
                      {f.ownership} · {f.permission === "rw" ? "read-write" : "read-only"}
                    </td>
                    <td>
                      <Meter
                        label={`${f.name} usage`}
                        used={used}
                        limit={quota}
                        text={`${bytes(used)} / ${quota ? bytes(quota) : "no quota"}${f.usage ? ` · ${f.usage.file_count} files` : ""}`}
                      />
                    </td>
                    <td className="actions">
                      <button type="button" aria-pressed={openId === f.id} onClick={() => setOpenId(f.id)}>
                        Browse {f.name}
                      </button>
                      {f.can_manage ? (
                        <>
                          <button type="button" onClick={() => setRenaming({ id: f.id, name: f.name })}>
                            Rename
                          </button>
                          <button
                            type="button"
                            className="danger"
                            onClick={() => {
                              if (!confirm(`Delete folder ${f.name} and every file in it?`)) return;
                              void act(async () => {
                                await call("DELETE", folderPath(f));
                                if (openId === f.id) setOpenId(null);
                              }, `Deleting folder ${f.name}.`);
                            }}
                          >
                            Delete
                          </button>
                        </>
                      ) : null}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        ) : null}
      </Section>
      {open ? <Browser key={open.id} folder={open} onChange={folders.reload} /> : null}
      {open?.can_manage ? <Shares key={`s-${open.id}`} folder={open} /> : null}
    </>
  );
}

function Browser({ folder, onChange }: { folder: VFolder; onChange(): void }) {
  const [dir, setDir] = useState("");
  const files = useLoad(
    () =>
      call<{ entries: FileEntry[] }>("GET", folderPath(folder, "/files"), { query: { path: dir } }).then((r) =>
        [...r.entries].sort((a, b) => Number(b.kind === "directory") - Number(a.kind === "directory") || a.name.localeCompare(b.name)),
      ),
    [folder.id, dir],
  );
  const [progress, setProgress] = useState<Record<string, number>>({});
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);
  const [newDir, setNewDir] = useState("");
  const [renaming, setRenaming] = useState<{ path: string; name: string } | null>(null);
  const writable = folder.permission === "rw";
  const join = (n: string) => (dir ? `${dir}/${n}` : n);

  const run = async (what: () => Promise<unknown>, done: string) => {
    setError(null);
    setMessage(null);
    try {
      await what();
      setMessage(done);
      files.reload();
      onChange();
    } catch (err) {
      setError(err);
    }
  };

  const upload = async (list: FileList | File[]) => {
    for (const file of Array.from(list)) {
      const path = join(file.name);
      setProgress((p) => ({ ...p, [path]: 0 }));
      await run(async () => {
        const g = await grant(folder, "upload", path);
        await tusUpload({
          endpoint: `${g.url.replace(/\/+$/, "")}/v1/upload`,
          token: g.token,
          file,
          metadata: { path, filename: file.name },
          onProgress: (sent, total) => setProgress((p) => ({ ...p, [path]: total ? sent / total : 1 })),
        });
      }, `Uploaded ${file.name} (${bytes(file.size)}).`);
    }
  };

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    if (writable) void upload(e.dataTransfer.files);
  };

  const download = (f: FileEntry) =>
    run(async () => {
      const g = await grant(folder, "download", f.path);
      const url = `${g.url.replace(/\/+$/, "")}/v1/download?path=${encodeURIComponent(f.path)}&token=${encodeURIComponent(g.token)}`;
      // The proxy answers with Content-Disposition: attachment, so this saves instead of navigating.
      const a = document.createElement("a");
      a.href = url;
      a.download = f.name;
      document.body.appendChild(a);
      a.click();
      a.remove();
    }, `Downloading ${f.name}.`);

  const mkdir = (e: FormEvent) => {
    e.preventDefault();
    const n = newDir.trim();
    void run(
      () => call("POST", folderPath(folder, "/files/mkdir"), { body: { path: join(n) } }).then(() => setNewDir("")),
      `Created directory ${n}.`,
    );
  };

  return (
    <Section
      title={`Files in ${folder.name}${dir ? `/${dir}` : ""}`}
      actions={
        dir ? (
          <button type="button" onClick={() => setDir(dir.split("/").slice(0, -1).join("/"))}>
            Up one level
          </button>
        ) : null
      }
    >
      <ErrorBanner error={files.error ?? error} />
      {message ? <Notice>{message}</Notice> : null}
      {writable ? (
        <>
          <form className="row" onSubmit={mkdir} aria-label="Create a directory">
            <Field label="New directory name">
              {(id) => <input id={id} required value={newDir} onChange={(e) => setNewDir(e.target.value)} />}
            </Field>
            <button type="submit">Create directory</button>
          </form>
          <div
            className={`dropzone${dragging ? " over" : ""}`}
            data-testid="dropzone"
            onDragOver={(e) => {
              e.preventDefault();
              setDragging(true);
            }}
            onDragLeave={() => setDragging(false)}
            onDrop={onDrop}
          >
            <p>Drop files here to upload them (resumable: a retry continues where it stopped), or</p>
            <Field label="Choose files to upload">
              {(id) => (
                <input
                  id={id}
                  type="file"
                  multiple
                  onChange={(e) => {
                    if (e.target.files) void upload(e.target.files).then(() => (e.target.value = ""));
                  }}
                />
              )}
            </Field>
            {Object.entries(progress).map(([n, p]) => (
              <div key={n} className="meter-row">
                <span className="meter-label">{n}</span>
                <Meter label={`upload ${n}`} used={p} limit={1} progress text={`${Math.round(p * 100)}%`} />
              </div>
            ))}
          </div>
        </>
      ) : (
        <p className="muted">This folder is shared with you read-only.</p>
      )}
      {files.data?.length === 0 ? <Empty>This directory is empty.</Empty> : null}
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
            <tr key={f.path} data-file={f.name}>
              <td>
                {renaming?.path === f.path ? (
                  <form
                    className="row"
                    aria-label={`Rename ${f.name}`}
                    onSubmit={(e) => {
                      e.preventDefault();
                      const to = join(renaming.name);
                      void run(
                        () => call("POST", folderPath(folder, "/files/move"), { body: { src: f.path, dst: to } }).then(() => setRenaming(null)),
                        `Renamed ${f.name} to ${renaming.name}.`,
                      );
                    }}
                  >
                    <Field label="New name">
                      {(id) => <input id={id} required autoFocus value={renaming.name} onChange={(e) => setRenaming({ path: f.path, name: e.target.value })} />}
                    </Field>
                    <button type="submit">Save</button>
                    <button type="button" onClick={() => setRenaming(null)}>
                      Cancel
                    </button>
                  </form>
                ) : f.kind === "directory" ? (
                  <button type="button" className="link" onClick={() => setDir(f.path)}>
                    {f.name}/
                  </button>
                ) : (
                  f.name
                )}
              </td>
              <td>{f.kind === "directory" ? "—" : bytes(f.size)}</td>
              <td>{when(f.modified_at)}</td>
              <td className="actions">
                {f.kind === "file" ? (
                  <button type="button" onClick={() => void download(f)}>
                    Download {f.name}
                  </button>
                ) : null}
                {writable ? (
                  <>
                    <button type="button" onClick={() => setRenaming({ path: f.path, name: f.name })}>
                      Rename {f.name}
                    </button>
                    <button
                      type="button"
                      className="danger"
                      onClick={() => {
                        if (confirm(`Delete ${f.name}${f.kind === "directory" ? " and everything in it" : ""}?`))
                          void run(
                            () => call("POST", folderPath(folder, "/files/delete"), { body: { paths: [f.path], recursive: true } }),
                            `Deleted ${f.name}.`,
                          );
                      }}
                    >
                      Delete {f.name}
                    </button>
                  </>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  );
}

function Shares({ folder }: { folder: VFolder }) {
  const shares = useLoad(() => call<{ items: Share[] }>("GET", folderPath(folder, "/shares")).then((r) => r.items), [folder.id]);
  const users = useLoad(() => optional(listAll<User>("/api/v1/users")), []);
  const projects = useLoad(() => optional(listAll<Project>("/api/v1/projects")), []);
  const [who, setWho] = useState("");
  // ShareOut carries ids only; remember the names typed here for users we may not list.
  const [typedNames, setTypedNames] = useState<Record<string, string>>({});
  const [mode, setMode] = useState<"ro" | "rw">("ro");
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);
  const nameOf = (s: Share) =>
    s.user_id
      ? `user ${users.data?.find((u) => u.id === s.user_id)?.username ?? typedNames[s.user_id] ?? s.user_id}`
      : `project ${projects.data?.find((p) => p.id === s.project_id)?.name ?? s.project_id}`;

  const share = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setMessage(null);
    try {
      const made = await call<Share>("POST", folderPath(folder, "/shares"), { body: { username: who.trim(), mode } });
      if (made.user_id) setTypedNames((m) => ({ ...m, [made.user_id as string]: who.trim() }));
      setMessage(`Shared ${folder.name} with ${who.trim()} (${mode === "rw" ? "read-write" : "read-only"}).`);
      setWho("");
      shares.reload();
    } catch (err) {
      setError(err);
    }
  };
  const unshare = async (s: Share) => {
    setError(null);
    setMessage(null);
    try {
      await call("DELETE", folderPath(folder, `/shares/${encodeURIComponent(s.id)}`));
      setMessage(`Stopped sharing with ${nameOf(s)}.`);
      shares.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <Section title={`Sharing ${folder.name}`}>
      <form className="row" onSubmit={share} aria-label="Share the folder">
        <Field label="Share with user">
          {(id) => <input id={id} required value={who} onChange={(e) => setWho(e.target.value)} placeholder="username" />}
        </Field>
        <Field label="Access">
          {(id) => (
            <select id={id} value={mode} onChange={(e) => setMode(e.target.value as "ro" | "rw")}>
              <option value="ro">read-only</option>
              <option value="rw">read-write</option>
            </select>
          )}
        </Field>
        <button type="submit">Share</button>
      </form>
      <ErrorBanner error={shares.error ?? error} />
      {message ? <Notice>{message}</Notice> : null}
      {shares.data?.length === 0 ? <Empty>Not shared with anyone.</Empty> : null}
      {shares.data?.length ? (
        <table data-testid="shares-table">
          <thead>
            <tr>
              <th>With</th>
              <th>Access</th>
              <th>Since</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {shares.data.map((s) => (
              <tr key={s.id}>
                <td>{nameOf(s)}</td>
                <td>{s.mode === "rw" ? "read-write" : "read-only"}</td>
                <td>{when(s.created_at)}</td>
                <td>
                  <button type="button" className="danger" onClick={() => void unshare(s)}>
                    Stop sharing with {nameOf(s)}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </Section>
  );
}
