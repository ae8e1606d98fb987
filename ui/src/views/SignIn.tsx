import { useState } from "preact/hooks";

export function SignIn(props: { refused: boolean; onSignIn: (key: string) => void }) {
  const [value, setValue] = useState("");
  return (
    <section class="card narrow" aria-labelledby="signin-title">
      <h1 id="signin-title">Sign in</h1>
      <p>
        Paste an API key of your tenant. It is kept in this tab's session storage only and sent
        to the gateway in the <code>Authorization</code> header.
      </p>
      {props.refused && (
        <p class="error" role="alert">
          The gateway refused that key (revoked, expired or mistyped). Sign in with another.
        </p>
      )}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (value.trim()) props.onSignIn(value.trim());
        }}
      >
        <label for="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autoComplete="off"
          required
          value={value}
          onInput={(event) => setValue(event.currentTarget.value)}
        />
        <button type="submit">Sign in</button>
      </form>
      <p class="hint">
        After <code>make demo</code>, <code>make status</code> prints the local admin key; open{" "}
        <code>/ui/#key=&lt;key&gt;</code> to sign in from the address bar.
      </p>
    </section>
  );
}
