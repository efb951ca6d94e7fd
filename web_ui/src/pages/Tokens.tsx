import { useState, type FormEvent } from "react";
import { api, unwrap, type Token } from "../api/client";
import { useLoad } from "../hooks";
import { when } from "../format";
import { Empty, ErrorBanner, Field, Section } from "../components/ui";

export function TokensPage() {
  const tokens = useLoad(
    async () => (await unwrap(api.GET("/api/v1/tokens", { params: { query: { limit: 200 } } }))).items,
    [],
  );
  const [name, setName] = useState("");
  const [issued, setIssued] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const t = await unwrap(api.POST("/api/v1/tokens", { body: { name } }));
      setIssued(t.token);
      setName("");
      tokens.reload();
    } catch (err) {
      setError(err);
    }
  };
  const revoke = async (t: Token) => {
    setError(null);
    try {
      await unwrap(
        api.POST("/api/v1/tokens/{token_id}/revoke", { params: { path: { token_id: t.id } } }),
      );
      tokens.reload();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <>
      <Section title="Create a token">
        <form className="row" onSubmit={create}>
          <Field label="Token name">
            {(id) => (
              <input id={id} required value={name} onChange={(e) => setName(e.target.value)} />
            )}
          </Field>
          <button type="submit" className="primary">
            Create token
          </button>
        </form>
        {issued ? (
          <div className="notice" role="status">
            Copy this token now; it is not shown again: <code className="secret">{issued}</code>
          </div>
        ) : null}
        <ErrorBanner error={error} />
      </Section>
      <Section title="Your tokens">
        <ErrorBanner error={tokens.error} />
        {tokens.data?.length === 0 ? <Empty>No tokens yet.</Empty> : null}
        <table>
          <thead>
            <tr>
              <th>Name</th>
              <th>Access key</th>
              <th>Created</th>
              <th>Last used</th>
              <th>Expires</th>
              <th>State</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {tokens.data?.map((t) => (
              <tr key={t.id}>
                <td>{t.name}</td>
                <td>
                  <code>{t.access_key}</code>
                </td>
                <td>{when(t.created_at)}</td>
                <td>{when(t.last_used_at)}</td>
                <td>{t.expires_at ? when(t.expires_at) : "never"}</td>
                <td>{t.revoked_at ? "revoked" : "active"}</td>
                <td>
                  {!t.revoked_at ? (
                    <button type="button" onClick={() => void revoke(t)}>
                      Revoke
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
    </>
  );
}
