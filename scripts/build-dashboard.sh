#!/usr/bin/env bash
# Builds the dashboard (dashboard/src, TypeScript + React 18 + Chart.js) into dashboard/dist/{index.html, app.js,
# app.js.map, app.css} with Debian's esbuild and the packages under /usr/share/nodejs (no npm registry needed).
# The output is deterministic (two builds are byte-identical, wherever the repository is checked out), so the built
# bundle is committed and checked against its sources:
#
#   scripts/build-dashboard.sh           rebuild dashboard/dist (what `make dashboard` runs)
#   scripts/build-dashboard.sh --check   type-check with tsc --noEmit, build into a temporary directory and fail if
#                                        the committed dashboard/dist differs (run by `make lint`)
#   scripts/build-dashboard.sh --test    run the unit tests of dashboard/tests with Node's test runner
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export NODE_PATH=/usr/share/nodejs
FILES=(index.html app.js app.js.map app.css)

for tool in esbuild node; do
  command -v "$tool" >/dev/null || {
    echo "build-dashboard: $tool is missing: run scripts/setup.sh (it installs Debian's esbuild and node packages)" >&2
    exit 1
  }
done

# build OUT: writes the four files into the directory OUT.
build() {
  local out=$1
  esbuild dashboard/src/main.tsx \
    --bundle --minify --sourcemap --sources-content=true \
    --format=iife --target=es2020 --platform=browser --charset=utf8 \
    --jsx=automatic --define:process.env.NODE_ENV='"production"' \
    --outfile="$out/app.js" --log-level=warning
  # Only app.js gets a source map; the stylesheet is small and readable enough without one.
  rm -f "$out/app.css.map"
  # Source-map paths are relative to the output directory, which differs between a build and a check (and between
  # checkouts): name sources relative to dashboard/dist, and system packages by their absolute path.
  node - "$out/app.js.map" "$out/app.css" "$repo" <<'JS'
const fs = require("fs");
const path = require("path");
const [mapFile, cssFile, repo] = process.argv.slice(2);
const map = JSON.parse(fs.readFileSync(mapFile, "utf8"));
const outDir = path.dirname(path.resolve(mapFile));
const dist = path.join(repo, "dashboard", "dist");
map.sources = map.sources.map((source) => {
  const absolute = path.resolve(outDir, source);
  return absolute.startsWith(repo + path.sep) ? path.relative(dist, absolute) : absolute;
});
fs.writeFileSync(mapFile, JSON.stringify(map));
const css = fs.readFileSync(cssFile, "utf8").replace(/\/\*# sourceMappingURL=[^*]*\*\/\s*$/, "");
fs.writeFileSync(cssFile, css.endsWith("\n") ? css : css + "\n");
JS
  local js_hash css_hash
  js_hash=$(sha256sum "$out/app.js" | cut -c1-12)
  css_hash=$(sha256sum "$out/app.css" | cut -c1-12)
  sed -e "s/@APP_JS_HASH@/$js_hash/" -e "s/@APP_CSS_HASH@/$css_hash/" dashboard/index.html >"$out/index.html"
}

if [[ ${1:-} == --test ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  for test in dashboard/tests/*.test.ts; do
    esbuild "$test" --bundle --platform=node --format=esm --target=node18 --jsx=automatic \
      --define:process.env.NODE_ENV='"production"' --outfile="$tmp/$(basename "$test" .ts).mjs" --log-level=warning
  done
  node --test --test-reporter=spec "$tmp"/*.test.mjs
elif [[ ${1:-} == --check ]]; then
  command -v tsc >/dev/null || {
    echo "build-dashboard: tsc is missing: run scripts/setup.sh (it installs Debian's node-typescript)" >&2
    exit 1
  }
  tsc --noEmit -p dashboard
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  build "$tmp"
  stale=0
  for file in "${FILES[@]}"; do
    if ! cmp -s "dashboard/dist/$file" "$tmp/$file"; then
      echo "build-dashboard: dashboard/dist/$file differs from a fresh build of dashboard/src" >&2
      stale=1
    fi
  done
  extra=$(find dashboard/dist -type f | sed 's|^dashboard/dist/||' | grep -vxF -e index.html -e app.js -e app.js.map -e app.css || true)
  if [[ -n $extra ]]; then
    echo "build-dashboard: unexpected files in dashboard/dist: $extra" >&2
    stale=1
  fi
  if ((stale)); then
    echo "build-dashboard: run \`make dashboard\` (it rebuilds dashboard/dist and embeds it in the coordinator's" \
      "sources) and commit both" >&2
    exit 1
  fi
  echo "build-dashboard: tsc clean; dashboard/dist is the build of dashboard/src"
else
  mkdir -p dashboard/dist
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  build "$tmp"
  for file in "${FILES[@]}"; do cp "$tmp/$file" "dashboard/dist/$file"; done
  ls -l dashboard/dist
fi
