package t
all_small if { every x in input.xs { x < 10 } }
grade := "a" if { input.score > 90 } else := "b" if { input.score > 80 } else := "c"
