package generated

p if {
	data.generated.q
}

q := true

q := true
