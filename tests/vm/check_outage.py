#!/usr/bin/env python3
"""VM suite, scenario collector-outage: every event the guest emitted
reached the collector exactly once, although the collector was down when the
guest sent them.

    check_outage.py STATE.json RUNS.json COLLECTOR_URL TOKEN_FILE

STATE.json is the guest's /run/speediso/state.json (its run_id and events),
RUNS.json the collector's GET /v1/runs. Exit 0 when the collector holds the
guest's run with seq 0..N each once and run_finished among them.
TOKEN_FILE holds a viewer API token on its first line (agent tokens read
nothing).
"""
import json
import sys
import urllib.request


def fail(msg):
    print(f"check_outage: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    state_path, runs_path, url, token_file = sys.argv[1:5]
    state = json.load(open(state_path))
    run_id = state["run_id"]
    want = sorted(e["seq"] for e in state["events"])
    runs = json.load(open(runs_path))
    if isinstance(runs, dict):
        runs = runs.get("runs", [])
    if run_id not in {r["run_id"] for r in runs}:
        fail(f"run {run_id} not in the collector yet")
    token = open(token_file).readline().strip()
    req = urllib.request.Request(f"{url}/v1/runs/{run_id}",
                                 headers={"Authorization": f"Bearer {token}"})
    run = json.load(urllib.request.urlopen(req, timeout=10))
    seqs = sorted(e["seq"] for e in run["events"])
    if len(seqs) != len(set(seqs)):
        fail(f"duplicate events stored: {seqs}")
    if seqs != list(range(len(seqs))):
        fail(f"gaps in stored seqs: {seqs}")
    # state.json keeps the most recent events only: each of them must be
    # stored, and nothing the guest emitted after them may be missing.
    if not set(want) <= set(seqs) or seqs[-1] != want[-1]:
        fail(f"stored {seqs}, guest's recent events {want}")
    types = [e.get("type") or e.get("event", {}).get("type") for e in run["events"]]
    if "run_finished" not in types:
        fail(f"no run_finished stored yet: {types}")
    print(f"check_outage: run {run_id}: {len(seqs)} events, each once")


if __name__ == "__main__":
    main()
