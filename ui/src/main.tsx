// The inspector's shell: sign-in, the hash route (#/ the list, #/workflows/<id> one
// workflow), and the header. The pages live in views/.

import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { whenUnauthorized } from "./api";
import { signIn, signInFromFragment, signOut, storedKey } from "./auth";
import { SignIn } from "./views/SignIn";
import { WorkflowListPage } from "./views/WorkflowList";
import { WorkflowPage } from "./views/WorkflowPage";

type Route = { page: "list" } | { page: "workflow"; id: string };

function currentRoute(): Route {
  const match = /^#\/workflows\/([^/?#]+)/.exec(window.location.hash);
  return match ? { page: "workflow", id: decodeURIComponent(match[1]) } : { page: "list" };
}

function App() {
  const [key, setKey] = useState<string | null>(storedKey());
  const [route, setRoute] = useState<Route>(currentRoute());
  const [refused, setRefused] = useState(false);

  useEffect(() => {
    const onHash = () => {
      if (signInFromFragment()) setKey(storedKey());
      setRoute(currentRoute());
    };
    window.addEventListener("hashchange", onHash);
    whenUnauthorized(() => {
      signOut();
      setRefused(true);
      setKey(null);
    });
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

  useEffect(() => {
    document.title =
      route.page === "workflow" ? `${route.id} · Tributary inspector` : "Workflows · Tributary inspector";
  }, [route]);

  const leave = () => {
    signOut();
    setRefused(false);
    setKey(null);
  };

  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <a class="brand" href="#/">Tributary inspector</a>
        {key && (
          <nav aria-label="Main">
            <a href="#/" aria-current={route.page === "list" ? "page" : undefined}>Workflows</a>
            <button type="button" class="link" onClick={leave}>Sign out</button>
          </nav>
        )}
      </header>
      <main id="main" tabIndex={-1}>
        {!key ? (
          <SignIn
            refused={refused}
            onSignIn={(value) => {
              signIn(value);
              setRefused(false);
              setKey(storedKey());
            }}
          />
        ) : route.page === "workflow" ? (
          <WorkflowPage key={route.id} apiKey={key} workflowId={route.id} />
        ) : (
          <WorkflowListPage apiKey={key} />
        )}
      </main>
    </>
  );
}

signInFromFragment();
const root = document.getElementById("app");
if (root) {
  root.textContent = "";
  render(<App />, root);
}
