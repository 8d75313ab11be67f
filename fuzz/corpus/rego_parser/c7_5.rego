package topdown.no.base.doc

p := true
