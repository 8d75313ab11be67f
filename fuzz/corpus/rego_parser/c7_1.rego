package topdown.a.b.c.undefined1

p if {
	false
}

p if {
	false
}

q if {
	false
}
