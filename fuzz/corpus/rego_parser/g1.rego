package t
p := x if { x := [1, 2][_] }
