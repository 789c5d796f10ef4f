/** History-API routes: `/`, `/databases/<id>`, `/databases/<id>/<tab>` (the server falls back to index.html). */
import { useEffect, useState } from 'react';

export const TABS = [
  { id: 'setup', label: 'Database Setup' },
  { id: 'integration', label: 'Client Integration' },
  { id: 'devices', label: 'Devices' },
  { id: 'metrics', label: 'Metrics' },
  { id: 'rejections', label: 'Rejections' },
] as const;
export type TabId = (typeof TABS)[number]['id'];

export type Route = { page: 'home' } | { page: 'database'; databaseId: string; tab: TabId };

export function parseRoute(pathname: string): Route {
  const m = /^\/databases\/([^/]+)(?:\/([a-z]+))?\/?$/.exec(pathname);
  if (m === null || m[1] === undefined) return { page: 'home' };
  const tab = TABS.find((t) => t.id === m[2])?.id ?? 'setup';
  return { page: 'database', databaseId: decodeURIComponent(m[1]), tab };
}

export function routePath(route: Route): string {
  return route.page === 'home' ? '/' : `/databases/${encodeURIComponent(route.databaseId)}/${route.tab}`;
}

export function useRoute(): [Route, (route: Route) => void] {
  const [route, setRoute] = useState(() => parseRoute(window.location.pathname));
  useEffect(() => {
    const onPop = () => setRoute(parseRoute(window.location.pathname));
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);
  const navigate = (next: Route) => {
    const path = routePath(next);
    if (path !== window.location.pathname) window.history.pushState(null, '', path);
    setRoute(next);
  };
  return [route, navigate];
}
