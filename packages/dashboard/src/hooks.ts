/** Data hooks over the typed client: one-shot queries with reload, and live subscriptions. */
import { createContext, useCallback, useContext, useEffect, useRef, useState } from 'react';
import type { ApiClient } from './api.ts';

export const ApiContext = createContext<ApiClient | null>(null);

/** Tells the shell that server state shown in the left panel (status, usage) may have changed. */
export const ChangedContext = createContext<() => void>(() => {});

export function useApi(): ApiClient {
  const api = useContext(ApiContext);
  if (api === null) throw new Error('useApi outside <ApiContext.Provider>');
  return api;
}

export interface AsyncState<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload(): Promise<void>;
  /** Replaces the data locally (after a mutation that returned the new state). */
  setData(update: T | ((current: T | undefined) => T)): void;
}

/** Runs `load` on mount and whenever `deps` change; the last call wins. */
export function useAsync<T>(load: () => Promise<T>, deps: readonly unknown[]): AsyncState<T> {
  const [data, setDataState] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  const reload = useCallback(async () => {
    const mine = ++generation.current;
    setLoading(true);
    try {
      const value = await loadRef.current();
      if (mine === generation.current) {
        setDataState(() => value);
        setError(null);
      }
    } catch (e) {
      if (mine === generation.current) setError(e);
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  }, []);

  useEffect(() => {
    void reload();
    return () => {
      generation.current++;
    };
  }, deps);

  const setData = useCallback((update: T | ((current: T | undefined) => T)) => {
    setDataState((current) => (typeof update === 'function' ? (update as (c: T | undefined) => T)(current) : update));
  }, []);

  return { data, error, loading, reload, setData };
}

export type LiveStatus = 'connecting' | 'live' | 'error';

/**
 * Consumes a subscription (an async iterator from the typed client) while mounted; `onData` is
 * called for each result. Status is `live` once the subscription is open (graphql-ws sends no
 * acknowledgement; a refused socket or subscription turns it to `error` with the reason).
 */
export function useSubscription<T>(open: (() => AsyncIterableIterator<T>) | null, onData: (value: T) => void, deps: readonly unknown[]): { status: LiveStatus; error: unknown } {
  const [status, setStatus] = useState<LiveStatus>('connecting');
  const [error, setError] = useState<unknown>(null);
  const onDataRef = useRef(onData);
  onDataRef.current = onData;

  useEffect(() => {
    if (open === null) return undefined;
    let stopped = false;
    const iterator = open();
    setStatus('live');
    setError(null);
    (async () => {
      try {
        for (;;) {
          const step = await iterator.next();
          if (stopped || step.done === true) break;
          setStatus('live');
          onDataRef.current(step.value);
        }
      } catch (e) {
        if (!stopped) {
          setStatus('error');
          setError(e);
        }
      }
    })();
    return () => {
      stopped = true;
      void iterator.return?.();
    };
  }, deps);

  return { status, error };
}
