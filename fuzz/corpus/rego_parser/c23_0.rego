package ex

multiple_roots if {
	false
} else := 1 if {
	false
} else := 2 if {
	true
} else := 3

multiple_roots := 2

multiple_roots := 3 if {
	false
} else := 2
