# Kubernetes resource quantities as numbers: "500m" -> 0.5, "2" -> 2, "1.5Gi" -> 1610612736,
# "2G" -> 2000000000, "1e3" -> 1000; YAML numbers as they are. Undefined for anything that
# is not a quantity, so callers can report it. Same parser as the K8sMLResourceLimits
# ConstraintTemplate (which has to inline it: Gatekeeper templates are self-contained).
package lib.quantity

import rego.v1

parse(q) := q if is_number(q)

parse(q) := n if {
	is_string(q)
	[num, suffix] := split(q)
	n := to_number(normalize(num)) * multipliers[suffix]
}

parse(q) := n if {
	is_string(q)
	[num, suffix] := split(q)
	n := to_number(normalize(num)) / divisors[suffix]
}

split(q) := [num, suffix] if {
	s := trim_space(q)
	num := regex.find_n(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?`, s, 1)[0]
	suffix := substring(s, count(num), count(s) - count(num))
}

# ".5" -> "0.5", "1." -> "1.0", "1.e3" -> "1.0e3": valid quantities that not every
# to_number implementation accepts.
normalize(num) := regex.replace(regex.replace(num, `^\.`, "0."), `\.([eE]|$)`, ".0$1")

multipliers := {
	"": 1,
	"k": 1000, "M": 1000000, "G": 1000000000, "T": 1000000000000,
	"P": 1000000000000000, "E": 1000000000000000000,
	"Ki": 1024, "Mi": 1048576, "Gi": 1073741824, "Ti": 1099511627776,
	"Pi": 1125899906842624, "Ei": 1152921504606846976,
}

divisors := {"m": 1000, "u": 1000000, "n": 1000000000}
