// The page is built into the Python package (lanes/dashboard/static), which the CLI serves.
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  build: {
    outDir: "../static",
    emptyOutDir: true,
    chunkSizeWarningLimit: 1024,
  },
});
