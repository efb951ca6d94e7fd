import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { api, ApiError, credentials, unwrap, type WhoAmI } from "./api/client";

interface AuthState {
  me: WhoAmI | null;
  loading: boolean;
  isAdmin: boolean;
  isSuperadmin: boolean;
  loginPassword(username: string, password: string): Promise<void>;
  loginToken(token: string): Promise<void>;
  logout(): Promise<void>;
}

const AuthContext = createContext<AuthState | null>(null);

async function fetchMe(): Promise<WhoAmI | null> {
  try {
    const me = await unwrap(api.GET("/api/v1/auth/me"));
    credentials.setCsrf(me.csrf_token);
    return me;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const [me, setMe] = useState<WhoAmI | null>(null);
  const [loading, setLoading] = useState(true);

  useEffect(() => {
    fetchMe()
      .then(setMe)
      .catch(() => setMe(null))
      .finally(() => setLoading(false));
  }, []);

  const loginPassword = useCallback(async (username: string, password: string) => {
    credentials.setToken(null);
    const result = await unwrap(api.POST("/api/v1/auth/login", { body: { username, password } }));
    credentials.setCsrf(result.csrf_token);
    setMe(result);
  }, []);

  const loginToken = useCallback(async (token: string) => {
    credentials.setToken(token.trim());
    try {
      setMe(await unwrap(api.GET("/api/v1/auth/me")));
    } catch (err) {
      credentials.setToken(null);
      throw err;
    }
  }, []);

  const logout = useCallback(async () => {
    if (!credentials.token) {
      await unwrap(api.POST("/api/v1/auth/logout")).catch(() => undefined);
    }
    credentials.setToken(null);
    credentials.setCsrf(null);
    setMe(null);
  }, []);

  const role = me?.user.role;
  const value: AuthState = {
    me,
    loading,
    isAdmin: role === "superadmin" || role === "domain_admin",
    isSuperadmin: role === "superadmin",
    loginPassword,
    loginToken,
    logout,
  };
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  const ctx = useContext(AuthContext);
  if (!ctx) throw new Error("useAuth outside AuthProvider");
  return ctx;
}
