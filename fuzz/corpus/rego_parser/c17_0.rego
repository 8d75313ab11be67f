package test

xs := {"a", "b", "c"}

p := x if {
	y := {x | xs[x]}
	z := {x | xs[x]}
	count(y) == count(z)
	x := count(y)
}
