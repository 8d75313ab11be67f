package generated

p if {
	null = null
}
