# Operators' own rules live in package tether.custom, in modules of their own (a
# configured directory or bundle server). Two rules are read:
#
#   deny contains msg if { ... }     # denies any request, with input as the whole request
#   grants contains role if { ... }  # extra local roles, from input.cert and input.cluster
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
