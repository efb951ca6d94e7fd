import { useEffect, type ReactNode } from "react";
import { useAuth } from "./auth";
import { Link, navigate, useLocation } from "./router";
import { LoginPage } from "./pages/Login";
import { DashboardPage } from "./pages/Dashboard";
import { SessionsPage } from "./pages/Sessions";
import { SessionDetailPage } from "./pages/SessionDetail";
import { LaunchPage } from "./pages/Launch";
import { DataPage } from "./pages/Data";
import { TokensPage } from "./pages/Tokens";
import { NodesPage } from "./pages/admin/Nodes";
import { UsersPage } from "./pages/admin/Users";
import { ProjectsPage } from "./pages/admin/Projects";
import { QuotasPage } from "./pages/admin/Quotas";
import { ResourceGroupsPage } from "./pages/admin/ResourceGroups";
import { QueuePage } from "./pages/admin/Queue";
import { UsagePage } from "./pages/admin/Usage";

interface RouteDef {
  path: string;
  title: string;
  admin?: boolean;
  nav?: boolean;
  render: (params: string[]) => ReactNode;
}

const ROUTES: RouteDef[] = [
  { path: "/", title: "Dashboard", nav: true, render: () => <DashboardPage /> },
  { path: "/sessions", title: "My sessions", nav: true, render: () => <SessionsPage /> },
  { path: "/sessions/*", title: "Session", render: ([id]) => <SessionDetailPage id={id} /> },
  { path: "/launch", title: "Launch", nav: true, render: () => <LaunchPage /> },
  { path: "/data", title: "Data", nav: true, render: () => <DataPage /> },
  { path: "/tokens", title: "API tokens", nav: true, render: () => <TokensPage /> },
  { path: "/admin/nodes", title: "Nodes", admin: true, nav: true, render: () => <NodesPage /> },
  { path: "/admin/queue", title: "Queue", admin: true, nav: true, render: () => <QueuePage /> },
  { path: "/admin/users", title: "Users", admin: true, nav: true, render: () => <UsersPage /> },
  {
    path: "/admin/projects",
    title: "Projects",
    admin: true,
    nav: true,
    render: () => <ProjectsPage />,
  },
  { path: "/admin/quotas", title: "Quotas", admin: true, nav: true, render: () => <QuotasPage /> },
  {
    path: "/admin/resource-groups",
    title: "Resource groups",
    admin: true,
    nav: true,
    render: () => <ResourceGroupsPage />,
  },
  { path: "/admin/usage", title: "Usage", admin: true, nav: true, render: () => <UsagePage /> },
];

function match(path: string): { route: RouteDef; params: string[] } | null {
  const clean = path.length > 1 ? path.replace(/\/+$/, "") : path;
  for (const route of ROUTES) {
    if (route.path.endsWith("/*")) {
      const base = route.path.slice(0, -1);
      if (clean.startsWith(base) && clean.length > base.length)
        return { route, params: clean.slice(base.length).split("/").map(decodeURIComponent) };
    } else if (route.path === clean) return { route, params: [] };
  }
  return null;
}

export function App() {
  const { me, loading, isAdmin, logout } = useAuth();
  const { path } = useLocation();
  const found = match(path);

  useEffect(() => {
    document.title = found ? `${found.route.title} · Berth` : "Berth";
  }, [found]);

  if (loading) return <div className="splash">Loading…</div>;
  if (!me) return <LoginPage />;

  const nav = ROUTES.filter((r) => r.nav && (!r.admin || isAdmin));
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <nav className="sidebar" aria-label="Main">
        <div className="brand">⚓ Berth</div>
        <ul>
          {nav
            .filter((r) => !r.admin)
            .map((r) => (
              <li key={r.path}>
                <Link to={r.path} aria-current={found?.route === r ? "page" : undefined}>
                  {r.title}
                </Link>
              </li>
            ))}
        </ul>
        {isAdmin ? (
          <>
            <div className="nav-group">Administration</div>
            <ul>
              {nav
                .filter((r) => r.admin)
                .map((r) => (
                  <li key={r.path}>
                    <Link to={r.path} aria-current={found?.route === r ? "page" : undefined}>
                      {r.title}
                    </Link>
                  </li>
                ))}
            </ul>
          </>
        ) : null}
        <div className="whoami">
          <div>
            Signed in as <strong data-testid="whoami">{me.user.username}</strong>
          </div>
          <div className="muted">{me.user.role.replace("_", " ")}</div>
          <button
            type="button"
            onClick={() => {
              void logout().then(() => navigate("/", true));
            }}
          >
            Log out
          </button>
        </div>
      </nav>
      <main id="main" tabIndex={-1}>
        {found && (!found.route.admin || isAdmin) ? (
          <>
            <h1>{found.route.title}</h1>
            {found.route.render(found.params)}
          </>
        ) : (
          <>
            <h1>Not found</h1>
            <p>
              There is no page at <code>{path}</code>. <Link to="/">Go to the dashboard</Link>.
            </p>
          </>
        )}
      </main>
    </div>
  );
}
