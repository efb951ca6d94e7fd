import { useState, type FormEvent } from "react";
import { api, unwrap, type User } from "../../api/client";
import { useAuth } from "../../auth";
import { useLoad } from "../../hooks";
import { when } from "../../format";
import { ErrorBanner, Field, Notice, Section } from "../../components/ui";

type Role = User["role"];

export function UsersPage() {
  const { isSuperadmin } = useAuth();
  const users = useLoad(
    async () => (await unwrap(api.GET("/api/v1/users", { params: { query: { limit: 500 } } }))).items,
    [],
  );
  const [form, setForm] = useState({ username: "", full_name: "", email: "", password: "", role: "user" as Role });
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    setMessage(null);
    try {
      const u = await unwrap(
        api.POST("/api/v1/users", {
          body: {
            username: form.username,
            full_name: form.full_name,
            email: form.email || null,
            password: form.password || null,
            role: form.role,
          },
        }),
      );
      setMessage(`User ${u.username} created.`);
      setForm({ username: "", full_name: "", email: "", password: "", role: "user" });
      users.reload();
    } catch (err) {
      setError(err);
    }
  };

  const setActive = async (u: User, is_active: boolean) => {
    setError(null);
    try {
      await unwrap(
        api.PATCH("/api/v1/users/{user_id}", { params: { path: { user_id: u.id } }, body: { is_active } }),
      );
      users.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <>
      <Section title="Create a user">
        <form className="grid3" onSubmit={create} aria-label="Create a user">
          <Field label="Username">
            {(id) => (
              <input id={id} required value={form.username} onChange={(e) => setForm({ ...form, username: e.target.value })} />
            )}
          </Field>
          <Field label="Full name">
            {(id) => <input id={id} value={form.full_name} onChange={(e) => setForm({ ...form, full_name: e.target.value })} />}
          </Field>
          <Field label="Email">
            {(id) => (
              <input id={id} type="email" value={form.email} onChange={(e) => setForm({ ...form, email: e.target.value })} />
            )}
          </Field>
          <Field label="Password" hint="At least 8 characters; leave empty for token-only users.">
            {(id) => (
              <input
                id={id}
                type="password"
                autoComplete="new-password"
                value={form.password}
                onChange={(e) => setForm({ ...form, password: e.target.value })}
              />
            )}
          </Field>
          <Field label="Role">
            {(id) => (
              <select id={id} value={form.role} onChange={(e) => setForm({ ...form, role: e.target.value as Role })}>
                <option value="user">user</option>
                <option value="domain_admin">domain admin</option>
                {isSuperadmin ? <option value="superadmin">superadmin</option> : null}
              </select>
            )}
          </Field>
          <div className="field">
            <button type="submit" className="primary">
              Create user
            </button>
          </div>
        </form>
        {message ? <Notice>{message}</Notice> : null}
        <ErrorBanner error={error} />
      </Section>
      <Section title="Users">
        <ErrorBanner error={users.error} />
        <table data-testid="users-table">
          <thead>
            <tr>
              <th>Username</th>
              <th>Name</th>
              <th>Email</th>
              <th>Role</th>
              <th>Created</th>
              <th>Active</th>
            </tr>
          </thead>
          <tbody>
            {users.data?.map((u) => (
              <tr key={u.id}>
                <td>{u.username}</td>
                <td>{u.full_name}</td>
                <td>{u.email ?? "—"}</td>
                <td>{u.role}</td>
                <td>{when(u.created_at)}</td>
                <td>
                  <label>
                    <input type="checkbox" checked={u.is_active} onChange={(e) => void setActive(u, e.target.checked)} />
                    <span className="sr-only">{u.username} active</span>
                  </label>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
    </>
  );
}
