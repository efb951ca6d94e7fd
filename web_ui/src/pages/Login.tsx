import { useState, type FormEvent } from "react";
import { useAuth } from "../auth";
import { ErrorBanner, Field } from "../components/ui";

export function LoginPage() {
  const { loginPassword, loginToken } = useAuth();
  const [mode, setMode] = useState<"password" | "token">("password");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [token, setToken] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (mode === "password") await loginPassword(username, password);
      else await loginToken(token);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="login" id="main">
      <form className="card login-card" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">⚓ Log in to Berth</h1>
        <div className="tabs" role="radiogroup" aria-label="Log in with">
          <label>
            <input
              type="radio"
              name="mode"
              checked={mode === "password"}
              onChange={() => setMode("password")}
            />{" "}
            with a password
          </label>
          <label>
            <input
              type="radio"
              name="mode"
              checked={mode === "token"}
              onChange={() => setMode("token")}
            />{" "}
            with an API token
          </label>
        </div>
        {mode === "password" ? (
          <>
            <Field label="Username">
              {(id) => (
                <input
                  id={id}
                  autoComplete="username"
                  required
                  autoFocus
                  value={username}
                  onChange={(e) => setUsername(e.target.value)}
                />
              )}
            </Field>
            <Field label="Password">
              {(id) => (
                <input
                  id={id}
                  type="password"
                  autoComplete="current-password"
                  required
                  value={password}
                  onChange={(e) => setPassword(e.target.value)}
                />
              )}
            </Field>
          </>
        ) : (
          <Field label="API token" hint="Kept for this browser tab only (session storage).">
            {(id) => (
              <input
                id={id}
                type="password"
                autoComplete="off"
                required
                value={token}
                onChange={(e) => setToken(e.target.value)}
              />
            )}
          </Field>
        )}
        <ErrorBanner error={error} />
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Logging in…" : "Log in"}
        </button>
      </form>
    </main>
  );
}
