// Builds static/notes/vendor/: ES modules for the Notes page, from the npm packages
// pinned in package-lock.json. One Yjs for everything: the entry points share chunks,
// and the page's import map resolves "yjs" and "y-protocols/awareness" to them.
//
//   cd example_project/notes/js && npm ci && npm run build
import { build } from "esbuild";
import { rmSync } from "node:fs";

const outdir = new URL("../static/notes/vendor/", import.meta.url).pathname;
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: {
    yjs: "entries/yjs.js",
    "y-protocols-awareness": "entries/y-protocols-awareness.js",
    editor: "entries/editor.js",
  },
  bundle: true,
  splitting: true,
  format: "esm",
  minify: true,
  target: "es2020",
  chunkNames: "chunk-[hash]",
  outdir,
  legalComments: "eof",
  logLevel: "info",
});
