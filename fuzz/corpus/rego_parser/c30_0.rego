package generated

p if {
	{"a": 1}
}
