# Operators' own rules live in package tether.custom, in modules of their own (a
# configured directory or bundle server). Two rules are read:
#
#   deny contains msg if { ... }     # denies any request, with input as the whole request
#   grants contains role if { ... }  # extra local roles, from input.cert and input.cluster
#
# Rules of the same names in packages below (tether.custom.teama) are added to these
# sets by a module bundles.ForCluster generates; a bundle with a deny or grants rule
# that neither set reads is refused. Operator rules may not call non-deterministic
# builtins, grants may read only input.cert and input.cluster, and a builtin error in
# any of them denies (docs/ARCHITECTURE.md, "Operator policy fails closed").
#
# This file only makes both sets exist (empty) when no operator module adds to them.
# METADATA
# title: Operator rules
# description: >-
#   Operators add deny and grants rules here (or in sub-packages, which bundles collect). Grants see only input.cert and input.cluster.
package tether.custom

deny contains msg if {
	false
	msg := ""
}

grants contains role if {
	false
	role := ""
}
