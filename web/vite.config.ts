import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const here = dirname(fileURLToPath(import.meta.url));

// The console: static pages built to dist/console, with relative URLs so they can be served from any path.
// Every page's <head> starts with console/head.html, written once (before Vite bundles what it links).
const sharedHead = {
  name: "shared-head",
  transformIndexHtml: {
    order: "pre" as const,
    handler: (html: string) => html.replace("<!-- shared head -->", readFileSync(resolve(here, "console/head.html"), "utf8").trim()),
  },
};

export default defineConfig({
  plugins: [sharedHead],
  root: resolve(here, "console"),
  base: "./",
  publicDir: resolve(here, "console/public"),
  build: {
    outDir: resolve(here, "dist/console"),
    emptyOutDir: true,
    target: "es2022",
    rollupOptions: {
      input: {
        index: resolve(here, "console/index.html"),
        speaker: resolve(here, "console/speaker.html"),
        listener: resolve(here, "console/listener.html"),
      },
    },
  },
  test: {
    root: here,
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
