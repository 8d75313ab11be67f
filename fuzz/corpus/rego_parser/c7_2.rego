package topdown.a.b.c.empty
