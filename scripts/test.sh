#!/usr/bin/env bash
# The one test command (`npm test`, also what CI runs): installs the system tools the tests use
# when they are missing, finds or starts a Docker engine (scripts/start-dockerd.sh), builds, and
# runs the whole suite on this machine's Node and on the current Node LTS (the one the Docker image
# ships), then the docker-compose stack test.
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
started_dockerd=no
cleanup() {
  rm -rf "$results"
  # An engine this run started is stopped again (its data, the pulled and built images, stays in
  # /tmp/test-dockerd for the next run; scripts/start-dockerd.sh --stop --purge removes it).
  # One that was running already (DOCKER_HOST, /var/run/docker.sock, or left by an earlier run) is
  # not ours to stop. KEEP_DOCKERD=1 leaves a started one running, for a CI machine that reuses it.
  if [[ $started_dockerd == yes && ${KEEP_DOCKERD:-0} != 1 ]]; then bash scripts/start-dockerd.sh --stop || true; fi
}
trap cleanup EXIT

# The e2e and stack tests need a Docker engine: the one in DOCKER_HOST or on the default socket when
# it answers, else one started here. Found once, for every run below (they all see DOCKER_HOST).
needs_docker=yes
if [[ $# -gt 0 ]]; then
  needs_docker=no
  for arg in "$@"; do [[ $arg == *e2e* || $arg == *stack* ]] && needs_docker=yes; done
fi
if [[ $needs_docker == yes ]]; then
  engine=$(bash scripts/start-dockerd.sh)
  DOCKER_HOST=$(sed -n 's/^DOCKER_HOST=//p' <<<"$engine")
  export DOCKER_HOST
  [[ $(sed -n 's/^DOCKERD_STARTED=//p' <<<"$engine") == yes ]] && started_dockerd=yes
  echo "docker engine: $DOCKER_HOST ($([[ $started_dockerd == yes ]] && echo "started for this run" || echo "already running"))"
fi
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
