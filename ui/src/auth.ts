// The API key lives in this tab's session storage only: never a cookie, never a URL
// the server sees. `/ui/#key=<key>` signs in from the fragment (which browsers do not
// send) and is then removed from the address bar and the history entry.

const STORAGE_KEY = "tributary.apiKey";
const FRAGMENT_PREFIX = "#key=";

export function storedKey(): string | null {
  return sessionStorage.getItem(STORAGE_KEY);
}

export function signIn(key: string): void {
  sessionStorage.setItem(STORAGE_KEY, key.trim());
}

export function signOut(): void {
  sessionStorage.removeItem(STORAGE_KEY);
}

/** Signs in from a `#key=` fragment, if there is one, and wipes it from the URL. */
export function signInFromFragment(): boolean {
  const hash = window.location.hash;
  if (!hash.startsWith(FRAGMENT_PREFIX)) return false;
  const key = decodeURIComponent(hash.slice(FRAGMENT_PREFIX.length));
  window.history.replaceState(null, "", window.location.pathname + window.location.search + "#/");
  if (!key) return false;
  signIn(key);
  return true;
}
