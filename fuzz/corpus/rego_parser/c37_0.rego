package generated

p contains x if {
	glob.match("{cat,bat,[fr]at}", [], "rat", x)
}
