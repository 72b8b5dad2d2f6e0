// The states every view can be in besides showing data: loading, empty (saying what to do), and failed (in the API's
// words).

import type { ReactNode } from "react";

/** "Loading <what>…", or `message` as given. */
export function Loading({ what, message }: { what?: string; message?: string }) {
  return (
    <div className="state state-loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {message ?? `Loading ${what}…`}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="state state-empty">
      <p className="state-title">{title}</p>
      {children}
    </div>
  );
}

export function ErrorNote({ message, children }: { message: string; children?: ReactNode }) {
  return (
    <div className="state state-error" role="alert">
      <p className="state-title">{message}</p>
      {children}
    </div>
  );
}

/** A shell command, shown so it can be copied as is. */
export function Command({ children }: { children: string }) {
  return (
    <pre className="command">
      <code>{children}</code>
    </pre>
  );
}
