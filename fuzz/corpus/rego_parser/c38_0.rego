package generated

p if {
	regex.globs_match("a.a.[0-9]+z", ".b.b2359825792*594823z")
}
