// Small React hooks shared by the views: the store from context, a ticking clock, the colour scheme, and a polled
// request.

import { createContext, useContext, useEffect, useRef, useState, useSyncExternalStore } from "react";
import { ApiError } from "./api";
import type { LiveState } from "./state";
import type { Store } from "./store";
import { useLive } from "./store";

export const StoreContext = createContext<Store | null>(null);

export function useStore(): Store {
  const store = useContext(StoreContext);
  if (!store) throw new Error("useStore outside <StoreContext.Provider>");
  return store;
}

/** The part of the live state `select` picks (it must return stored values, not new objects). */
export function useLiveState<T>(select: (state: LiveState) => T): T {
  return useLive(useStore(), select);
}

/** `Date.now()`, re-rendering every `intervalMs`. */
export function useNow(intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}

const darkQuery = () => window.matchMedia("(prefers-color-scheme: dark)");

/** "dark" or "light", following prefers-color-scheme as it changes. */
export function useColorScheme(): "dark" | "light" {
  const dark = useSyncExternalStore(
    (listener) => {
      const query = darkQuery();
      query.addEventListener("change", listener);
      return () => query.removeEventListener("change", listener);
    },
    () => darkQuery().matches,
  );
  return dark ? "dark" : "light";
}

/** The value of a CSS custom property of the page (e.g. `--fg`). */
export function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export interface Polled<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
}

/** Runs `load` now and every `intervalMs` (0: once) while `key` stays the same; the last answer stays shown while the
 * next one loads. */
export function usePolled<T>(key: string, load: (signal: AbortSignal) => Promise<T>, intervalMs: number): Polled<T> {
  const [result, setResult] = useState<Polled<T>>({ data: null, error: null, loading: true });
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let active = true;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const controller = new AbortController();
    setResult({ data: null, error: null, loading: true });
    const run = async () => {
      try {
        const data = await loadRef.current(controller.signal);
        if (active) setResult({ data, error: null, loading: false });
      } catch (error) {
        if (!active) return;
        const apiError = error instanceof ApiError ? error : new ApiError(0, "error", String(error));
        setResult((previous) => ({ data: previous.data, error: apiError, loading: false }));
      }
      if (active && intervalMs > 0) timer = setTimeout(run, intervalMs);
    };
    void run();
    return () => {
      active = false;
      controller.abort();
      if (timer !== null) clearTimeout(timer);
    };
  }, [key, intervalMs]);
  return result;
}
