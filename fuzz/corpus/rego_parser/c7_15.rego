package topdown.a.b.c.s

w := {"f": 10, "g": 9.9}
