// Builds the inspector into the folder the gateway serves under /ui:
// one bundled, minified script and stylesheet next to index.html (no inline
// script, so the gateway's content-security policy can forbid them).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out =
  process.env.INSPECTOR_OUT ??
  join(here, "..", "services", "gateway", "src", "tributary_gateway", "inspector_build");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: join(here, "src", "main.tsx"), style: join(here, "src", "style.css") },
  outdir: out,
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: ["es2022"],
  jsx: "automatic",
  jsxImportSource: "preact",
  logLevel: "warning",
});
copyFileSync(join(here, "src", "index.html"), join(out, "index.html"));
console.log(`inspector built into ${out}`);
