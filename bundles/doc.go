// Package bundles builds, reads, writes, signs and verifies the OPA bundles
// that carry Tether's policy: the Rego v1 modules and the data document
// (data.tether) that the decision engine evaluates.
//
// A [Bundle] is the part of an OPA bundle that Tether uses: a revision, the
// roots it owns, the whole data document, the modules as source files and
// optional manifest metadata. [Build] makes one from parts and refuses anything
// OPA would refuse later: modules that do not parse as Rego v1 or do not
// compile together, packages or data outside the roots. When no revision is
// given, Build derives one from the content ("sha256:<hex>"), so equal inputs
// give equal revisions and the engine can key its caches on it.
//
// [Shape] also stores derived data: what the identity stage would compute from the
// bundle alone (a trusted cluster's role_map validation and one regex of its patterns,
// each selector key's literal matcher, each role's certificate-independent part, each
// certificate authority's problems), evaluated once at build time by the library's own
// rules (derived.go), so a new certificate does not pay for it; the engine checks it
// against the rules at load.
//
// On disk a bundle is what OPA reads: a .tar.gz archive ([WriteTarGz],
// [ReadTarGz]) or a directory ([WriteDir]); [Read] takes either. Both hold
// .manifest (revision, roots, rego_version 1, metadata), a data.json at the
// root holding the whole data document, the .rego files at their paths and,
// once signed, .signatures.json. The conversion to and from
// github.com/open-policy-agent/opa/v1/bundle is done here, so `opa eval -b`,
// `opa build` and `opa run` accept what this package writes.
//
// Reading is defensive because bundles travel: a [Reader] refuses archives
// larger than its MaxBytes (64 MiB uncompressed by default, and as much
// compressed), truncated or corrupt archives ([ErrCorrupt]), entry names that
// climb out of the bundle ("../x.rego"), links, device files, delta bundles and
// Wasm or plan modules, which Tether does not evaluate. Every Bundle it returns
// has passed the same checks as one from Build.
//
// Signing follows OPA's scheme and uses OPA's signing code: [Sign] puts one JWT
// into .signatures.json whose "files" claim lists each file's SHA-256 (data
// and manifest hashed as canonical JSON, modules as bytes). [ReadVerified]
// refuses a bundle that is unsigned ([ErrUnsigned]), signed with another key,
// or whose files differ from what was signed ([ErrBadSignature]); OPA's own
// verifier (`opa build --verification-key`, `opa run --verification-key`)
// accepts what Sign produced.
package bundles
