package t
p if { x := }
