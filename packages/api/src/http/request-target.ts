/** Request targets (the URL of an HTTP request line) parsed without ever throwing. */

/**
 * The path and query of a request target, never throwing: an origin-form target (`/…`) is
 * read as a path even when it starts with `//` (which `new URL(target, base)` would take for a
 * host, or refuse: `GET //` threw before); other forms (absolute-form from proxies) go through
 * `new URL`. Undefined for a target that is not a URL at all.
 */
export function requestTarget(raw: string | undefined): { pathname: string; query: URLSearchParams } | undefined {
  const target = raw ?? '/';
  try {
    const u = target.startsWith('/') ? new URL(`http://localhost${target}`) : new URL(target, 'http://localhost/');
    return { pathname: u.pathname, query: u.searchParams };
  } catch {
    return undefined;
  }
}
