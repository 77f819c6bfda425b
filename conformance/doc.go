// Package conformance holds Tether's decision vectors: the rules of DESIGN §3a written as
// data, run through the Go engine (package policy) and emitted as Rego tests for the real
// `opa test`, so both evaluators are held to the same answers.
//
// # Vector files
//
// Vectors live in vectors/*.yaml, embedded in the package, one file per concern (rolemap,
// templates, labels, logins, certs, cluster_labels, locks, operator, seed_guide). The file
// name (a lower-case identifier) names the Go subtests and the emitted Rego package. A file
// is one YAML document, decoded strictly: an unknown field anywhere is an error.
//
//	cluster: leaf.example.com     # required: the cluster whose decisions are asked
//	max_clock_skew: 1m            # optional: the cluster's explicit skew (default none)
//	resources: |                  # required: multi-document resource YAML, as resource.Parse
//	  kind: role                  #   reads it (roles, trusted_cluster with role_map,
//	  ...                         #   remote_cluster with labels, cert_authority, lock)
//	foreign_keys:                 # optional: SSH public keys of CAs the cluster does NOT
//	  - ssh-ed25519 AAAA...       #   know, for vectors about unknown signers
//	modules:                      # optional: operators' Rego modules (package tether.custom
//	  - name: deny.rego           #   or below), added to the bundle as operators add them
//	    rego: |
//	      package tether.custom
//	      deny contains msg if { ... }
//	rejected:                     # optional: resources that must NOT load (rules checked
//	  - name: unknown_namespace   #   at create, before any decision); checked in Go by
//	    resources: |              #   TestRejectedResources, not emitted as Rego
//	      kind: role ...
//	    error: unknown namespace  #   a substring of resource.Parse's error
//	anchors:                      # optional, never read: a place for YAML anchors
//	  cert: &cert {type: user, ...}
//	vectors:                      # required, at least one
//	  - name: regex_must_match_whole_role   # required: [a-z][a-z0-9_]*, unique in the file,
//	                                        #   named like the rule it proves
//	    input: {...}              # required: the decision input document, exactly the JSON
//	                              #   shape policy.ParseInputJSON reads (written as YAML;
//	                              #   anchors and << merges allowed; unknown fields are errors)
//	    want:
//	      allow: false            # required
//	      roles: [visitor]        # optional: the decision's roles, in order; [] means none
//	      reasons_contain: [...]  # optional: each must be a substring of some reason
//	      reasons_prefix: [...]   # optional: each must start some reason
//	      expires_at: "2026-11-24T07:00:00Z"  # optional: RFC 3339, or "none" for null
//	    known_bug: "..."          # optional: the vector states the rule but Tether breaks
//	                              #   it today; the vector is skipped, showing this text
//
// Certificate authorities are fixed ed25519 keys. Inputs name their signer by the key's
// SHA256 fingerprint, hard-coded; TestVectorFingerprints checks that every fingerprint an
// input uses belongs to a cert_authority of its file or to one of its foreign_keys.
//
// # Running
//
// TestVectors builds each file's bundle with bundles.ForCluster (resources, the Rego
// library, the file's operator modules), loads it into a policy.Engine, and checks every
// vector on both Engine.Decide (staged, cached) and Engine.DecidePlain (the public query in
// one evaluation), which must also agree with each other. Subtests are named
// TestVectors/<file>/<vector name>.
//
// # Emitted Rego
//
// EmitRego writes, for each file NAME, NAME_test.rego in package tether.conformance.NAME:
//
//	data_doc := {"tether": {...}}                 # the bundle's data.json
//	decide(inp) := d if { d := data.tether.authz.decision with input as inp
//	    with data.tether.cas as data_doc.tether.cas ... }
//	test_<vector name> if { d := decide({...}); d.allow == false; ... }
//
// A vector with known_bug becomes todo_test_<name>, which opa test reports as skipped.
//
// data.tether cannot be replaced in one `with data.tether as ...`: the library's rules live
// under data.tether too, so that would replace (and, from a test inside data.tether, recurse
// into) them. Each base document of the bundle data (cas, cluster, locks, remote_clusters,
// roles, trusted_clusters) is replaced on its own path instead.
//
// Operator modules cannot be emitted as package tether.custom: opa test loads every file
// into one compiler, so one file's rules would apply to every other file's vectors and to
// the library's own tests. Nor does `with data.tether.custom as data.tether.conformance.NAME.custom`
// work: a with value is evaluated once, where the with is written, so the operator's rules
// would see the test's (empty) input instead of each request's. So each file's modules are
// emitted as NAME_custom_<module>, moved to package tether.conformance.NAME.custom (and
// references to data.tether.custom... inside them rewritten), and decide evaluates them the
// way the library evaluates data.tether.custom: deny with the whole request as input,
// grants with only {cert, cluster}, both on the file's bundle data; it then replaces
// data.tether.custom.deny and data.tether.custom.grants with those values. Files without
// operator modules leave data.tether.custom alone.
//
// TestEmittedRegoPassesWithRealOPA runs `bin/opa test --format=json rego/ <emitted dir>`
// (bin/opa is built by `make tools`) and requires every emitted test to pass, known bugs
// skipped, one test per vector.
package conformance
