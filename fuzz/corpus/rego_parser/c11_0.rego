package generated

p if {
	1 < -1
}
