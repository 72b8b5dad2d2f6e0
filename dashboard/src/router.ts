// A small hash router: `#/workers?task=mnist&status=dead` names a view and its parameters, so every view (with its
// filters and sort order) can be bookmarked and shared, and the browser's back button works.

import { useCallback, useSyncExternalStore } from "react";

export const VIEWS = ["overview", "workers", "training", "datasets", "barriers", "checkpoints", "tasks", "logs"] as const;
export type View = (typeof VIEWS)[number];

export const VIEW_TITLES: Record<View, string> = {
  overview: "Overview",
  workers: "Workers",
  training: "Training",
  datasets: "Datasets",
  barriers: "Barriers",
  checkpoints: "Checkpoints",
  tasks: "Tasks",
  logs: "Logs",
};

/** A parsed location: the view (null for an unknown path) and its query parameters. */
export interface Route {
  view: View | null;
  path: string;
  params: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#/, "");
  const [pathPart, query = ""] = raw.split("?", 2);
  const path = pathPart.replace(/^\/+|\/+$/g, "");
  const view = path === "" ? "overview" : (VIEWS as readonly string[]).includes(path) ? (path as View) : null;
  return { view, path, params: new URLSearchParams(query) };
}

/** `#/workers?task=a` for a view and its parameters (empty values are left out). */
export function href(view: View, params: Record<string, string | null | undefined> = {}): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) query.set(key, value);
  const text = query.toString();
  return `#/${view === "overview" ? "" : view}${text ? "?" + text : ""}`;
}

function subscribe(listener: () => void): () => void {
  window.addEventListener("hashchange", listener);
  return () => window.removeEventListener("hashchange", listener);
}

const getHash = () => window.location.hash;

/** The current route; re-renders on navigation. */
export function useRoute(): Route {
  const hash = useSyncExternalStore(subscribe, getHash);
  return parseHash(hash);
}

/** Changes parameters of the current view, replacing the history entry (filters should not flood the back button). */
export function useSetParams(): (changes: Record<string, string | null>) => void {
  return useCallback((changes) => {
    const route = parseHash(window.location.hash);
    const params = new URLSearchParams(route.params);
    for (const [key, value] of Object.entries(changes)) {
      if (value === null || value === "") params.delete(key);
      else params.set(key, value);
    }
    const text = params.toString();
    const url = `#/${route.path}${text ? "?" + text : ""}`;
    window.history.replaceState(null, "", url);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  }, []);
}
