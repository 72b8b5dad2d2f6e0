// The page: header (coordinator, connection, token), navigation between the views, the disconnected banner, and the
// current view, or the admin-token prompt when the coordinator asks for one.

import { useEffect, useRef, useState } from "react";
import type { FormEvent } from "react";
import { formatDuration } from "./format";
import { useLiveState, useNow, useStore } from "./hooks";
import { VIEWS, VIEW_TITLES, href, useRoute } from "./router";
import type { View } from "./router";
import type { Connection } from "./state";
import { Loading } from "./components/States";
import { Barriers } from "./views/Barriers";
import { Checkpoints } from "./views/Checkpoints";
import { Datasets } from "./views/Datasets";
import { Logs } from "./views/Logs";
import { Overview } from "./views/Overview";
import { Tasks } from "./views/Tasks";
import { Training } from "./views/Training";
import { Workers } from "./views/Workers";

const VIEW_COMPONENTS: Record<View, () => JSX.Element | null> = {
  overview: Overview,
  workers: Workers,
  training: Training,
  datasets: Datasets,
  barriers: Barriers,
  checkpoints: Checkpoints,
  tasks: Tasks,
  logs: Logs,
};

export function App() {
  const route = useRoute();
  const connection = useLiveState((s) => s.connection);
  const loaded = useLiveState((s) => s.loaded);
  const title = route.view ? VIEW_TITLES[route.view] : "Not found";

  useEffect(() => {
    document.title = `${title} · dtruntime`;
  }, [title]);

  const ViewComponent = route.view ? VIEW_COMPONENTS[route.view] : null;
  let content: JSX.Element;
  if (connection.phase === "token") content = <TokenPrompt message={connection.message} />;
  else if (!loaded && connection.phase === "disconnected") content = <Loading message="Waiting for the coordinator to answer…" />;
  else if (!loaded) content = <Loading what="the coordinator's state" />;
  else if (ViewComponent) content = <ViewComponent />;
  else
    content = (
      <div className="state state-error" role="alert">
        <p className="state-title">There is no view “{route.path}”.</p>
        <p>
          Go to the <a href={href("overview")}>overview</a>.
        </p>
      </div>
    );

  return (
    <>
      <a className="skip-link" href="#main" onClick={skipToMain}>
        Skip to content
      </a>
      <Header connection={connection} />
      <nav className="tabs" aria-label="Views">
        <ul>
          {VIEWS.map((view) => (
            <li key={view}>
              <a href={href(view)} aria-current={route.view === view ? "page" : undefined}>
                {VIEW_TITLES[view]}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <DisconnectedBanner connection={connection} />
      <main id="main" tabIndex={-1}>
        <h1>{title}</h1>
        {content}
      </main>
    </>
  );
}

/** The skip link targets #main without changing the hash route. */
function skipToMain(event: React.MouseEvent) {
  event.preventDefault();
  document.getElementById("main")?.focus();
}

function Header({ connection }: { connection: Connection }) {
  const store = useStore();
  const status = useLiveState((s) => s.status);
  const updatedAt = useLiveState((s) => s.updatedAt);
  const now = useNow(1000);
  const uptime = status ? status.uptime_seconds + Math.max(0, now - updatedAt) / 1000 : null;
  const phase = connection.phase;
  const pill =
    phase === "live"
      ? { tone: "ok", text: "live" }
      : phase === "polling"
        ? { tone: "ok", text: "polling" }
        : phase === "disconnected"
          ? { tone: "bad", text: "disconnected" }
          : phase === "token"
            ? { tone: "warn", text: "token needed" }
            : { tone: "info", text: "connecting" };
  return (
    <header className="topbar">
      <div className="brand">
        <span className="brand-mark" aria-hidden="true" />
        <span className="brand-name">dtruntime</span>
      </div>
      {status && (
        <p className="coordinator" title="The coordinator this page shows">
          <span>v{status.version}</span>
          <span className="narrow-hide">
            {status.host}:{status.grpc_port ?? "—"} (gRPC)
          </span>
          <span className="narrow-hide">up {formatDuration(uptime)}</span>
        </p>
      )}
      <div className="topbar-right">
        <span className={`pill tone-${pill.tone}`} data-connection={phase}>
          <span className="badge-dot" aria-hidden="true" />
          {pill.text}
        </span>
        {store.hasToken && phase !== "token" && (
          <button type="button" className="button-quiet" onClick={() => store.forgetToken()}>
            Forget token
          </button>
        )}
      </div>
    </header>
  );
}

function DisconnectedBanner({ connection }: { connection: Connection }) {
  const store = useStore();
  const now = useNow(250);
  if (connection.phase !== "disconnected") return null;
  const seconds = Math.max(0, Math.ceil((connection.retryAt - now) / 1000));
  return (
    <div className="banner" role="alert" data-testid="disconnected-banner">
      <p>
        <strong>Disconnected from the coordinator</strong>, retrying in <span className="num">{seconds} s</span>.{" "}
        <span className="banner-detail">{connection.message}.</span>
      </p>
      <button type="button" onClick={() => store.retryNow()}>
        Retry now
      </button>
    </div>
  );
}

function TokenPrompt({ message }: { message: string | null }) {
  const store = useStore();
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(message);
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => input.current?.focus(), []);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    const refused = await store.submitToken(token);
    setBusy(false);
    setError(refused);
    if (refused) input.current?.focus();
  };

  return (
    <form className="card token-form" onSubmit={submit} aria-describedby="token-help">
      <h2>This coordinator needs its admin token</h2>
      <p id="token-help" className="muted">
        It was started with <code>--admin-token</code> (or <code>DTR_ADMIN_TOKEN</code>). The token is kept in this
        browser tab only (sessionStorage) and sent as <code>Authorization: Bearer</code>.
      </p>
      <div className="field">
        <label htmlFor="admin-token">Admin token</label>
        <input
          ref={input}
          id="admin-token"
          name="admin-token"
          type="password"
          autoComplete="off"
          spellCheck={false}
          value={token}
          onChange={(e) => setToken(e.target.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? "admin-token-error" : undefined}
        />
        {error && (
          <p id="admin-token-error" className="field-error" role="alert">
            {error}
          </p>
        )}
      </div>
      <button type="submit" className="button-primary" disabled={busy}>
        {busy ? "Checking…" : "Use this token"}
      </button>
    </form>
  );
}
