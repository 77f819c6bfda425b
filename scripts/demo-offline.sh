#!/usr/bin/env bash
# The seed guide's policy, offline: no cluster running, only files.
# Builds the leaf's bundle, asks the guide's three questions with tetherctl, and checks that
# the real opa gives the same answers from the same bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin
seed=examples/seed-guide
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== Building the leaf's policy bundle (resources + Tether's Rego library)"
$bin/tetherctl policy build --cluster leafcluster.example.com -r $seed/leaf.yaml -o "$out/leaf.tar.gz"

for q in myuser-access-visitor alice-stage alice-prod; do
	echo
	echo "== $q: tetherctl policy explain"
	$bin/tetherctl policy explain -b "$out/leaf.tar.gz" -i $seed/inputs/$q.json
	echo "-- the same question to the real opa: opa eval -b leaf.tar.gz data.tether.authz.decision"
	$bin/opa eval -b "$out/leaf.tar.gz" -i $seed/inputs/$q.json --format=pretty 'data.tether.authz.decision.allow'
done
