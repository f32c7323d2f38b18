#!/usr/bin/env bash
# The one test command (`npm test`, also what CI runs): installs the system tools the tests use
# when they are missing, finds or starts a Docker engine (scripts/start-dockerd.sh), builds, and
# runs the whole suite on this machine's Node and on the current Node LTS (the one the Docker image
# ships), then the docker-compose stack test.
#
# The Docker engine: the one in DOCKER_HOST or on /var/run/docker.sock when it answers (the
# machine's: used, never stopped). Otherwise the project's own, under /tmp/test-dockerd: started for
# this run, or found still running from an earlier one; at the end it is stopped and its folder
# (pulled and built images, about 2 GB) removed. KEEP_DOCKERD=1 keeps it running with its images,
# for a CI machine that reuses it; the next run without KEEP_DOCKERD=1 removes it.
#
# Leftovers: a whole run (no arguments; LEFTOVERS=1 asks for it on a partial run too) lists the
# top level of /tmp and the untracked and ignored entries of the working tree (`git status
# --ignored`, without node_modules/ and dist/) before it starts, and again at the end, after the
# engine is gone. Every new entry is one failed check, "left behind: /tmp/NAME", counted in the
# closing line and making the exit status non-zero. Only the caches in ALLOWED_TMP may appear; an
# entry gone again five seconds later belonged to something else still running and is not counted.
set -euo pipefail
cd "$(dirname "$0")/.."

LTS_NODE=${LTS_NODE:-26}
export LC_ALL=C # one sort order for the leftover lists

# Caches tools keep on purpose in /tmp, made by the first run and reused by later ones.
ALLOWED_TMP=(
  node-compile-cache # Node's module compile cache (npm and npx turn it on), keyed by Node version
)
check_leftovers=no
[[ $# -eq 0 || ${LEFTOVERS:-0} == 1 ]] && check_leftovers=yes
entries() { # one line per entry: /tmp/NAME, and ./PATH for the working tree's untracked and ignored
  {
    find /tmp -mindepth 1 -maxdepth 1 -printf '/tmp/%P\n'
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
      git status --porcelain --ignored | sed -n 's/^\(??\|!!\) //p'
      find . \( -name .git -o -name node_modules -o -path ./dist \) -prune -o -type d -empty -printf '%P/\n' # git shows no empty folder
    else
      find . -mindepth 1 -maxdepth 1 -printf '%P\n'
    fi | { grep -Ev '^(node_modules|dist)(/|$)' || true; } | sed 's|^|./|' # a clean tree has none
  } | sort
}
[[ $check_leftovers == yes ]] && before=$(entries)

# tool -> Debian package
declare -A PACKAGES=([docker-registry]=docker-registry [skopeo]=skopeo [podman]=podman [ctr]=containerd [containerd]=containerd [htpasswd]=apache2-utils [openssl]=openssl [tar]=tar [testssl]=testssl.sh [wrk]=wrk [pebble]=pebble [chromium]=chromium)
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

# The per-run result files live under node_modules/.cache, outside the leftover check.
mkdir -p node_modules/.cache
results=$(mktemp -d node_modules/.cache/test-results.XXXXXX)
engine_ours=no kept_engine=
stop_engine() {
  # The project's own engine (started here or found from an earlier run) is stopped and its folder
  # removed; one given in DOCKER_HOST or on /var/run/docker.sock is not ours to stop.
  if [[ $engine_ours == yes && ${KEEP_DOCKERD:-0} != 1 ]]; then
    bash scripts/start-dockerd.sh --stop --purge || true
  elif [[ $engine_ours == yes ]]; then
    kept_engine=/tmp/test-dockerd # kept on request: not a leftover
  fi
  engine_ours=no
}
cleanup() {
  stop_engine
  rm -rf "$results"
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
  case $(sed -n 's/^DOCKERD_STARTED=//p' <<<"$engine") in
    yes) engine_ours=yes how="started for this run" ;;
    earlier) engine_ours=yes how="the project's own, left running by an earlier run" ;;
    *) how="the machine's, already running" ;;
  esac
  echo "docker engine: $DOCKER_HOST ($how)"
fi
status=0
run_suite() { # LABEL VITEST_ARGS -- NODE_COMMAND...
  local label=$1; shift
  local args=(); while [[ $1 != -- ]]; do args+=("$1"); shift; done; shift
  echo "== $label tests on node $("$@" --version)"
  "$@" node_modules/vitest/vitest.mjs run --reporter=default --reporter=json --outputFile="$results/$label.json" "${args[@]}" || status=1
}

# Arguments naming the stack or browser tests (`npm test -- test/stack`) go to that run alone, the others to
# both Node runs; with none, everything runs.
suite_args=() stack_args=() browser_args=()
for arg in "$@"; do
  if [[ $arg == *stack* ]]; then stack_args+=("$arg")
  elif [[ $arg == *browser* ]]; then browser_args+=("$arg")
  else suite_args+=("$arg"); fi
done
if [[ $# -eq 0 || ${#suite_args[@]} -gt 0 ]]; then
  run_suite "node$(node -p 'process.versions.node.split(".")[0]')" "${suite_args[@]}" -- node
  run_suite "node$LTS_NODE" "${suite_args[@]}" -- npx -y -p "node@$LTS_NODE" -- node
fi
# The web UI in a real browser once: the browser, not the host's Node, is what it tests.
if [[ $# -eq 0 || ${#browser_args[@]} -gt 0 ]]; then run_suite browser --config vitest.browser.config.ts "${browser_args[@]}" -- node; fi
# The docker-compose stack once: it tests the image and compose file, not the host's Node.
if [[ $# -eq 0 || ${#stack_args[@]} -gt 0 ]]; then run_suite stack --config vitest.stack.config.ts "${stack_args[@]}" -- node; fi

stop_engine

# What the run left in /tmp or in the working tree: one failed check, listing each entry.
if [[ $check_leftovers == yes ]]; then
  new_entries() {
    comm -13 <(echo "$before") <(entries) | while read -r entry; do
      name=${entry#/tmp/}
      if [[ $entry == /tmp/* && " ${ALLOWED_TMP[*]} " == *" $name "* ]]; then continue; fi
      if [[ $entry == "$kept_engine" ]]; then continue; fi
      echo "$entry"
    done
  }
  left=$(new_entries)
  # An entry that goes away within seconds belonged to something else still running.
  if [[ -n $left ]]; then sleep 5; left=$(comm -12 <(echo "$left") <(new_entries)); fi
  counted=()
  while read -r entry; do [[ -n $entry ]] && counted+=("$entry"); done <<<"$left"
  for entry in "${counted[@]}"; do echo "left behind: $entry"; done
  if ((${#counted[@]})); then status=1; fi
  printf '{"leftovers":%d}\n' "${#counted[@]}" >"$results/leftovers.check"
fi

# One plain closing line per run and in total: "N passed, N failed".
node -e '
  const fs = require("fs"), path = require("path");
  let passed = 0, failed = 0;
  const failures = [];
  for (const f of fs.readdirSync(process.argv[1]).sort()) {
    const r = JSON.parse(fs.readFileSync(path.join(process.argv[1], f), "utf8"));
    if (f.endsWith(".check")) { // the leftover check: one check, passed when nothing was left
      const x = r.leftovers > 0 ? 1 : 0;
      console.log(`leftovers: ${1 - x} passed, ${x} failed`);
      passed += 1 - x; failed += x;
      continue;
    }
    // A test file that fails to load, or whose beforeAll/afterAll failed (its tests then show as
    // skipped, or passed), counts as a failure even though none of its tests failed.
    const unloaded = r.testResults.filter((f) => f.status === "failed" && !f.assertionResults.some((a) => a.status === "failed")).length;
    const p = r.numPassedTests, x = r.numFailedTests + unloaded, run = path.basename(f, ".json");
    console.log(`${run}: ${p} passed, ${x} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));
    passed += p; failed += x;
    // Named again here, at the end, where a log cut to its last lines still shows them.
    for (const file of r.testResults) {
      const name = path.relative(process.cwd(), file.name);
      const tests = file.assertionResults.filter((a) => a.status === "failed");
      if (file.status === "failed" && tests.length === 0) failures.push(`${run}: ${name}: ${(file.message || "failed outside its tests").split("\n")[0]}`);
      for (const a of tests) failures.push(`${run}: ${name} > ${a.fullName}: ${(a.failureMessages[0] || "").split("\n")[0].slice(0, 300)}`);
    }
  }
  for (const f of failures) console.log(`failed: ${f}`);
  console.log(`${passed} passed, ${failed} failed`);
' "$results"
exit $status
