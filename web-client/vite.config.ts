import { defineConfig } from 'vite';

// The server serves dist/ at `/` with an SPA fallback, so assets use absolute
// `/assets/...` paths (valid from /join/<id> too).
export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2020',
    sourcemap: false,
  },
  server: {
    host: '127.0.0.1',
    // `npm run dev` against a locally running server: OPENHEARING_URL=http://127.0.0.1:8443
    proxy: process.env.OPENHEARING_URL
      ? {
          '/ws': { target: process.env.OPENHEARING_URL, ws: true, changeOrigin: true, secure: false },
          '/api': { target: process.env.OPENHEARING_URL, changeOrigin: true, secure: false },
        }
      : undefined,
  },
});
