import { useState, type FormEvent } from "react";
import { api, listAll, unwrap, type Project, type User } from "../../api/client";
import { useLoad } from "../../hooks";
import { when } from "../../format";
import { ErrorBanner, Field, Notice, Section } from "../../components/ui";

export function ProjectsPage() {
  const projects = useLoad(() => listAll<Project>("/api/v1/projects"), []);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [selected, setSelected] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setMessage(null);
    try {
      const p = await unwrap(api.POST("/api/v1/projects", { body: { name, description } }));
      setMessage(`Project ${p.name} created.`);
      setName("");
      setDescription("");
      projects.reload();
      setSelected(p.id);
    } catch (err) {
      setError(err);
    }
  };

  const remove = async (p: Project) => {
    if (!confirm(`Delete project ${p.name}?`)) return;
    setError(null);
    try {
      await unwrap(api.DELETE("/api/v1/projects/{project_id}", { params: { path: { project_id: p.id } } }));
      if (selected === p.id) setSelected(null);
      projects.reload();
    } catch (err) {
      setError(err);
    }
  };

  const current = projects.data?.find((p) => p.id === selected) ?? null;
  return (
    <>
      <Section title="Create a project">
        <form className="row" onSubmit={create} aria-label="Create a project">
          <Field label="Project name">
            {(id) => <input id={id} required value={name} onChange={(e) => setName(e.target.value)} />}
          </Field>
          <Field label="Description">
            {(id) => <input id={id} value={description} onChange={(e) => setDescription(e.target.value)} />}
          </Field>
          <button type="submit" className="primary">
            Create project
          </button>
        </form>
        {message ? <Notice>{message}</Notice> : null}
        <ErrorBanner error={error} />
      </Section>
      <Section title="Projects">
        <ErrorBanner error={projects.error} />
        <table data-testid="projects-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Description</th>
              <th>Created</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            {projects.data?.map((p) => (
              <tr key={p.id} aria-selected={p.id === selected}>
                <td>{p.name}</td>
                <td>{p.description}</td>
                <td>{when(p.created_at)}</td>
                <td className="actions">
                  <button type="button" onClick={() => setSelected(p.id)}>
                    Members of {p.name}
                  </button>
                  <button type="button" className="danger" onClick={() => void remove(p)}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
      {current ? <Members project={current} /> : null}
    </>
  );
}

function Members({ project }: { project: Project }) {
  const members = useLoad(
    async () =>
      (await unwrap(api.GET("/api/v1/projects/{project_id}/members", { params: { path: { project_id: project.id } } })))
        .items,
    [project.id],
  );
  const users = useLoad(() => listAll<User>("/api/v1/users"), []);
  const [userId, setUserId] = useState("");
  const [role, setRole] = useState<"member" | "admin">("member");
  const [error, setError] = useState<unknown>(null);

  const add = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await unwrap(
        api.PUT("/api/v1/projects/{project_id}/members/{user_id}", {
          params: { path: { project_id: project.id, user_id: userId } },
          body: { role },
        }),
      );
      members.reload();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (uid: string) => {
    setError(null);
    try {
      await unwrap(
        api.DELETE("/api/v1/projects/{project_id}/members/{user_id}", {
          params: { path: { project_id: project.id, user_id: uid } },
        }),
      );
      members.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <Section title={`Members of ${project.name}`}>
      <form className="row" onSubmit={add} aria-label="Add a member">
        <Field label="User">
          {(id) => (
            <select id={id} required value={userId} onChange={(e) => setUserId(e.target.value)}>
              <option value="">Choose a user…</option>
              {users.data?.map((u) => (
                <option key={u.id} value={u.id}>
                  {u.username}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Project role">
          {(id) => (
            <select id={id} value={role} onChange={(e) => setRole(e.target.value as "member" | "admin")}>
              <option value="member">member</option>
              <option value="admin">admin</option>
            </select>
          )}
        </Field>
        <button type="submit" className="primary">
          Add member
        </button>
      </form>
      <ErrorBanner error={members.error ?? error} />
      <table data-testid="members-table">
        <thead>
          <tr>
            <th>User</th>
            <th>Role</th>
            <th>Since</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {members.data?.map((m) => (
            <tr key={m.user_id}>
              <td>{m.username}</td>
              <td>{m.role}</td>
              <td>{when(m.created_at)}</td>
              <td>
                <button type="button" onClick={() => void remove(m.user_id)}>
                  Remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  );
}
