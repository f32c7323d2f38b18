#!/usr/bin/env bash
# The one test command (`npm test`, also what CI runs): installs the system tools the tests use
# when they are missing, builds, and runs the whole suite on this machine's Node and on the
# current Node LTS (the one the Docker image ships), then the docker-compose stack test.
set -euo pipefail
cd "$(dirname "$0")/.."

LTS_NODE=${LTS_NODE:-26}

# tool -> Debian package
declare -A PACKAGES=([docker-registry]=docker-registry [skopeo]=skopeo [htpasswd]=apache2-utils [openssl]=openssl [tar]=tar [testssl]=testssl.sh [wrk]=wrk)
missing=()
for tool in "${!PACKAGES[@]}"; do command -v "$tool" >/dev/null || missing+=("${PACKAGES[$tool]}"); done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "The tests need these Debian packages: ${missing[*]}. Install them (as root: apt-get install ${missing[*]}) and run npm test again." >&2
    exit 1
  fi
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

npm run --silent build
npm run --silent typecheck   # vitest strips types without checking them

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0
run_suite() { # LABEL VITEST_ARGS -- NODE_COMMAND...
  local label=$1; shift
  local args=(); while [[ $1 != -- ]]; do args+=("$1"); shift; done; shift
  echo "== $label tests on node $("$@" --version)"
  "$@" node_modules/vitest/vitest.mjs run --reporter=default --reporter=json --outputFile="$results/$label.json" "${args[@]}" || status=1
}

run_suite "node$(node -p 'process.versions.node.split(".")[0]')" "$@" -- node
run_suite "node$LTS_NODE" "$@" -- npx -y -p "node@$LTS_NODE" -- node
# The docker-compose stack once: it tests the image and compose file, not the host's Node.
# (Skipped only when arguments pick particular test files: `npm test -- test/unit`.)
if [[ $# -eq 0 ]]; then run_suite stack --config vitest.stack.config.ts -- node; fi

# One plain closing line per run and in total: "N passed, N failed".
node -e '
  const fs = require("fs"), path = require("path");
  let passed = 0, failed = 0;
  for (const f of fs.readdirSync(process.argv[1]).sort()) {
    const r = JSON.parse(fs.readFileSync(path.join(process.argv[1], f), "utf8"));
    // A test file that fails to load counts as a failure even though none of its tests ran.
    const unloaded = r.testResults.filter((f) => f.status === "failed" && f.assertionResults.length === 0).length;
    const p = r.numPassedTests, x = r.numFailedTests + unloaded;
    console.log(`${path.basename(f, ".json")}: ${p} passed, ${x} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));
    passed += p; failed += x;
  }
  console.log(`${passed} passed, ${failed} failed`);
' "$results"
exit $status
