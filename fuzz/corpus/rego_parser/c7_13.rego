package topdown.g.h

p if {
	false
}
