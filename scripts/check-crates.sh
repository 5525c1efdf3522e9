#!/usr/bin/env bash
# The workspace's boundaries (docs/architecture.md), checked in CI:
# - the agent's dependency tree (all edges: normal, build and dev) holds no
#   async runtime, HTTP server or database crate, so the static image
#   binary stays small and the collector's stack never ships in it;
# - the collector and the repository tool do not depend on the agent;
# - no module of the agent imports from its CLI layer (src/cli/), only
#   the other way round;
# - no step module (and no leaf) imports the layers that drive the modules
#   (plan, tasks, registry, run, dispatch): modules see only the leaves
#   (module, options, root, blockdev, events, ...), so no import circle
#   runs through the registry;
# - no agent module joins a rooted path by hand: a root is a
#   crate::root::Root, and Root::at is the one way to a path under it
#   (the type has no join; root.path().join(...) is refused here).
# Exits 1 naming each violation.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
say() { echo "check-crates: $*" >&2; }

agent_tree=$(cargo tree --locked -p speediso -e normal,build,dev --prefix none --format '{p}')
for forbidden in tokio axum rusqlite postgres tokio-postgres hyper; do
    if grep -q "^$forbidden v" <<<"$agent_tree"; then
        say "the agent (speediso) depends on $forbidden:"
        cargo tree --locked -p speediso -e normal,build,dev -i "$forbidden" >&2 || true
        bad=1
    fi
done
for pkg in speediso-collector speediso-repo speediso-proto; do
    if cargo tree --locked -p "$pkg" -e normal,build --prefix none --format '{p}' | grep -q '^speediso v'; then
        say "$pkg depends on the agent crate (speediso)"
        bad=1
    fi
done
if up=$(grep -rn 'crate::cli\b' crates/agent/src --include='*.rs' |
    grep -v '^crates/agent/src/cli/\|^crates/agent/src/main.rs:'); then
    say "agent modules import from the CLI layer:"
    echo "$up" >&2
    bad=1
fi
# The layers point down: modules and leaves never import what drives them.
if up=$(grep -rnE 'crate::(plan|tasks|registry|run|dispatch)\b' \
    crates/agent/src/{bench,burnin,inventory,netbench,wipe,install,health,blockdev,sinks,report} \
    crates/agent/src/{module,options,root,events,host,http,redact,cmdline}.rs --include='*.rs' |
    grep -vE ':\s*//|use crate::plan::check_options as plan_options'); then
    say "a module or leaf imports a layer above it (plan, tasks, registry, run, dispatch):"
    echo "$up" >&2
    bad=1
fi
# Every rooted /proc, /sys, /dev or /run path goes through Root::at
# (fixture trees stand in for machines only if nothing joins the root by
# hand).
if joins=$(grep -rnE '(^|[^[:alnum:]_.])root\.(path\(\)\.)?join\(' crates/agent/src --include='*.rs' |
    grep -v '^crates/agent/src/root.rs:' | grep -vE 'let r = root\.path\(\);'); then
    say "rooted paths joined by hand instead of Root::at:"
    echo "$joins" >&2
    bad=1
fi
if [ "$bad" = 0 ]; then
    say "ok: the agent's tree has $(sort -u <<<"$agent_tree" | wc -l) crates and none of tokio, axum, rusqlite, postgres; collector, repo and proto do not depend on it; no module imports the CLI layer or the layers that drive it; every rooted path goes through Root::at"
fi
exit "$bad"
